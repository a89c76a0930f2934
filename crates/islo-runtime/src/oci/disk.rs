//! Per-sandbox disks: sparse ext4 images bounding each sandbox's writable layer.
//!
//! One template per size is made with `mkfs.ext4` once; each sandbox gets a sparse copy (its
//! few megabytes of data copied in the kernel, holes left as holes). A few copies per size are
//! kept ready in a pool, so a create only renames a file; the pool is refilled by a thread
//! that runs only when nothing else wants the CPU (`SCHED_IDLE`), so a refill never slows the
//! creates that emptied it. Nor does its I/O: each copy is written out (`fdatasync`), and it
//! copies only while no create or removal is under way ([`Disks::busy`], `activity.rs`).
//!
//! The refill also mounts each copy, attached nowhere yet ([`Host::mount_detached`]): an
//! ext4 mount writes its superblock and journal through to the host (two `fsync`s of the
//! image, 4-9 ms of a create here, more when the host disk is busy). A create that takes such
//! a disk only attaches the mount inside its sandbox's mount namespace ([`Host::attach`]).
//! The mounts live as long as islod's descriptors of them: what a restart finds in the pool
//! is used as plain images (mounted by the create).
//!
//! The template's inode tables are left to be zeroed lazily (`lazy_itable_init=1`), and
//! disks are mounted with `noinit_itable` ([`crate::loopdev::mount_ext4`]), so the kernel
//! never does: a copy's tables are holes, zeros already. Tables zeroed by `mkfs` made every
//! mount of a copy ~25 ms slower here; lazy ones zeroed by the kernel queued work for its
//! `ext4lazyinit` thread with each new sandbox, which went on for minutes after a burst of
//! creates, slowed the creates that followed and grew every image.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::activity::{Activity, Busy};

use crate::DriverError;
use crate::host::{Host, Mount};

/// Ready-made images kept per size.
const POOL_SIZE: usize = 4;

/// Makes disks under `<state>/disk-templates` and `<state>/disk-pool`.
pub(super) struct Disks {
    templates: PathBuf,
    pool: PathBuf,
    host: Arc<dyn Host>,
    refilling: Arc<Mutex<()>>,
    activity: Arc<Activity>,
    /// Pool images mounted ahead, and their mounts.
    mounted: Arc<Mutex<Vec<(PathBuf, OwnedFd)>>>,
    /// Images given to creates with their mounts, until [`Disks::mount`] attaches them.
    given: Mutex<HashMap<PathBuf, OwnedFd>>,
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Disks {
    pub fn new(state_dir: &Path, host: Arc<dyn Host>) -> Result<Self, DriverError> {
        let (templates, pool) = (
            state_dir.join("disk-templates"),
            state_dir.join("disk-pool"),
        );
        for d in [&templates, &pool] {
            std::fs::create_dir_all(d).map_err(DriverError::io(d.display().to_string()))?;
        }
        Ok(Self {
            templates,
            pool,
            host,
            refilling: Arc::new(Mutex::new(())),
            activity: Arc::default(),
            mounted: Arc::default(),
            given: Mutex::default(),
        })
    }

    /// Mark a create or removal under way until the guard drops.
    pub(super) fn busy(&self) -> Busy {
        self.activity.busy()
    }

    /// What the pool's refill waits on, for other background I/O to wait on too.
    pub(super) fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Put a fresh disk of `bytes` at `dest` (kept with its mount when the pool had one
    /// mounted ahead: [`Disks::mount`] attaches it).
    pub fn make(&self, bytes: u64, dest: &Path) -> Result<(), DriverError> {
        let tmpl = self.template(bytes)?;
        let prefix = format!("{bytes}-");
        let of_size = |p: &Path| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        };
        let mut mounted = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(i) = mounted.iter().position(|(p, _)| of_size(p)) {
            let (path, mnt) = mounted.swap_remove(i);
            if std::fs::rename(&path, dest).is_ok() {
                drop(mounted);
                self.given().insert(dest.to_path_buf(), mnt);
                self.refill(bytes, tmpl);
                return Ok(());
            }
        }
        // Images a restart found (or the refill could not mount): free for the taking, but
        // not those mounted ahead, which were looked at above.
        let taken = std::fs::read_dir(&self.pool).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| of_size(p) && !mounted.iter().any(|(m, _)| m == p))
                .find(|p| std::fs::rename(p, dest).is_ok())
        });
        drop(mounted);
        if taken.is_none() {
            let _ = std::fs::remove_file(dest);
            copy_sparse(&tmpl, dest).map_err(DriverError::io(format!(
                "copying disk template to {}",
                dest.display()
            )))?;
        }
        self.refill(bytes, tmpl);
        Ok(())
    }

    /// Mount the disk `image` at `target`: attach the mount it was made with, if any, else
    /// mount the image.
    pub(super) fn mount(&self, image: &Path, target: &Path) -> std::io::Result<()> {
        let ahead = self.given().remove(image);
        if let Some(mnt) = ahead {
            match self.host.attach(mnt, target) {
                Ok(()) => return Ok(()),
                // The mount went with the descriptor: the image is free to mount here.
                Err(e) => tracing::warn!(image = %image.display(), error = %e,
                    "mounting the disk instead"),
            }
        }
        self.host.mount(&Mount::Loop {
            image: image.to_path_buf(),
            target: target.to_path_buf(),
        })
    }

    /// Drop the mount `image` was made with, if [`Disks::mount`] never attached it (a create
    /// that failed first).
    pub(super) fn forget(&self, image: &Path) {
        drop(self.given().remove(image));
    }

    /// How many pool images are mounted ahead now.
    #[cfg(test)]
    pub(super) fn mounted_ahead(&self) -> usize {
        self.mounted.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn given(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, OwnedFd>> {
        self.given.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The template of `bytes`, made if missing.
    fn template(&self, bytes: u64) -> Result<PathBuf, DriverError> {
        let tmpl = self.templates.join(format!("{bytes}.img"));
        if tmpl.exists() {
            return Ok(tmpl);
        }
        let tmp = self.templates.join(format!(".{bytes}-{}.tmp", unique()));
        let f = std::fs::File::create(&tmp).map_err(DriverError::io(tmp.display().to_string()))?;
        f.set_len(bytes)
            .map_err(DriverError::io(tmp.display().to_string()))?;
        let opts = [
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
        ];
        let args: Vec<OsString> = opts
            .iter()
            .map(OsString::from)
            .chain([tmp.clone().into_os_string()])
            .collect();
        let out = self
            .host
            .run(Path::new("mkfs.ext4"), &args)
            .map_err(DriverError::io("mkfs.ext4"))?;
        if !out.success {
            let _ = std::fs::remove_file(&tmp);
            return Err(DriverError::Host(format!(
                "mkfs.ext4: {}",
                out.stderr.trim()
            )));
        }
        std::fs::rename(&tmp, &tmpl).map_err(DriverError::io(tmpl.display().to_string()))?;
        Ok(tmpl)
    }

    /// Top the pool up to [`POOL_SIZE`] images of `bytes` on a background thread.
    fn refill(&self, bytes: u64, tmpl: PathBuf) {
        let lock = self.refilling.clone();
        let refill = Refill {
            pool: self.pool.clone(),
            tmpl,
            prefix: format!("{bytes}-"),
            activity: self.activity.clone(),
            host: self.host.clone(),
            mounted: self.mounted.clone(),
        };
        std::thread::spawn(move || {
            let Ok(_one_at_a_time) = lock.try_lock() else {
                return;
            };
            background_priority();
            let have = std::fs::read_dir(&refill.pool)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&refill.prefix))
                        .count()
                })
                .unwrap_or(0);
            for _ in have..POOL_SIZE {
                if !refill.add_one() {
                    return;
                }
            }
        });
    }
}

/// What a refill thread needs.
struct Refill {
    pool: PathBuf,
    tmpl: PathBuf,
    prefix: String,
    activity: Arc<Activity>,
    host: Arc<dyn Host>,
    mounted: Arc<Mutex<Vec<(PathBuf, OwnedFd)>>>,
}

impl Refill {
    /// Add one image to the pool, mounted ahead if it can be; false if none could be added.
    fn add_one(&self) -> bool {
        self.activity.wait_quiet();
        let id = unique();
        let tmp = self.pool.join(format!(".{id}.tmp"));
        // Written out here, at idle priority: setting up a loop device writes out its image's
        // dirty pages first (`ext4_sync_file` under `loop_configure` in a profile here).
        if copy_sparse(&self.tmpl, &tmp).is_err()
            || std::fs::File::open(&tmp)
                .and_then(|f| f.sync_data())
                .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        // Mounted before it is in the pool under its name, and named and listed under one
        // lock, so a create never takes an image mounted here to mount it a second time.
        self.activity.wait_quiet();
        let mnt = self
            .host
            .mount_detached(&tmp)
            .inspect_err(|e| tracing::debug!(error = %e, "pool disk left for its create to mount"));
        let ready = self.pool.join(format!("{}{id}", self.prefix));
        let mut list = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
        if std::fs::rename(&tmp, &ready).is_err() {
            drop(list);
            drop(mnt);
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        if let Ok(mnt) = mnt {
            list.push((ready, mnt));
        }
        true
    }
}

/// Copy `from` to a new file `to`, its data extents only: the holes of a sparse image stay
/// holes, and the data moves in the kernel (`copy_file_range`), not through this process.
fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{SeekFrom, copy_file_range, seek};
    let src = std::fs::File::open(from)?;
    let dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let len = src.metadata()?.len();
    let mut at = 0;
    while at < len {
        let data = match seek(&src, SeekFrom::Data(at)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(&src, SeekFrom::Hole(data))?;
        let (mut off_in, mut off_out) = (data, data);
        while off_in < hole {
            let left = usize::try_from(hole - off_in).unwrap_or(usize::MAX);
            let n = copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), left)?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "{} ended while copying",
                    from.display()
                )));
            }
        }
        at = hole;
    }
    dst.set_len(len)
}

/// Let the calling thread run only when the CPU is otherwise idle.
pub(super) fn background_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` on the calling thread (0) with a valid, initialised
    // parameter; it reads `param` and changes nothing else of this process.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "background work at normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::copy_sparse;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn a_sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        let mut f = std::fs::File::create(&from).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.set_len(256 << 20).unwrap();
        drop(f);
        copy_sparse(&from, &to).unwrap();
        let (a, b) = (std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        assert_eq!(a, b);
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&to).unwrap().blocks();
        assert!(blocks < 1024, "the copy is not sparse: {blocks} blocks");
        assert!(
            copy_sparse(&from, &to).is_err(),
            "an existing file is not overwritten"
        );
    }
}
