//! Per-sandbox disks: sparse ext4 images bounding each sandbox's writable layer.
//!
//! One template per size is made with `mkfs.ext4` once; each sandbox gets a sparse copy. A few
//! copies per size are kept ready in a pool and refilled in the background, so a create only
//! renames a file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::DriverError;
use crate::host::Host;

/// Ready-made images kept per size.
const POOL_SIZE: usize = 4;

/// Makes disks under `<state>/disk-templates` and `<state>/disk-pool`.
pub struct Disks {
    templates: PathBuf,
    pool: PathBuf,
    host: Arc<dyn Host>,
    refilling: Arc<Mutex<()>>,
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
        })
    }

    /// Put a fresh disk of `bytes` at `dest`.
    pub fn make(&self, bytes: u64, dest: &Path) -> Result<(), DriverError> {
        let tmpl = self.template(bytes)?;
        let prefix = format!("{bytes}-");
        let taken = std::fs::read_dir(&self.pool).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
                .find(|p| std::fs::rename(p, dest).is_ok())
        });
        if taken.is_none() {
            copy(self.host.as_ref(), &tmpl, dest)?;
        }
        self.refill(bytes, tmpl);
        Ok(())
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
        let (pool, host, lock) = (self.pool.clone(), self.host.clone(), self.refilling.clone());
        std::thread::spawn(move || {
            let Ok(_one_at_a_time) = lock.try_lock() else {
                return;
            };
            let prefix = format!("{bytes}-");
            let have = std::fs::read_dir(&pool)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .count()
                })
                .unwrap_or(0);
            for _ in have..POOL_SIZE {
                let id = unique();
                let tmp = pool.join(format!(".{id}.tmp"));
                if copy(host.as_ref(), &tmpl, &tmp).is_err()
                    || std::fs::rename(&tmp, pool.join(format!("{prefix}{id}"))).is_err()
                {
                    let _ = std::fs::remove_file(&tmp);
                    return;
                }
            }
        });
    }
}

fn copy(host: &dyn Host, from: &Path, to: &Path) -> Result<(), DriverError> {
    let args = [
        "--sparse=always".into(),
        from.as_os_str().to_owned(),
        to.as_os_str().to_owned(),
    ];
    let out = host
        .run(Path::new("cp"), &args)
        .map_err(DriverError::io("cp"))?;
    if out.success {
        Ok(())
    } else {
        Err(DriverError::Host(format!(
            "copying disk template: {}",
            out.stderr.trim()
        )))
    }
}
