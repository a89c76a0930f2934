//! A sandbox's disk image mounted through a loop device set up here, with the kernel's own
//! calls (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`), instead of util-linux's `mount -o loop`:
//! that one first reads every loop device on the host to find one already backed by the same
//! file, so its cost grew with the number of sandboxes (tens of milliseconds per create with
//! a few hundred). The device is set to clear itself when its last user goes (the mount), as
//! `mount -o loop` does, so unmounting frees it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::mount::MountFlags;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `EXT4_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`) and its flag that drops the journal unwritten.
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;
/// The loop driver's block major number.
const LOOP_MAJOR: u32 = 7;
/// How often a device another process took between finding and configuring it is skipped.
const ATTEMPTS: usize = 32;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h, Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn config(backing: u32, image: &Path) -> LoopConfig {
    let mut file_name = [0u8; 64];
    let name = image.as_os_str().as_encoded_bytes();
    let n = name.len().min(63);
    file_name[..n].copy_from_slice(&name[..n]);
    LoopConfig {
        fd: backing,
        block_size: 0,
        info: LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: LO_FLAGS_AUTOCLEAR,
            file_name,
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        },
        reserved: [0; 8],
    }
}

/// Mount the ext4 image `image` at `target` (noatime) through a free loop device, with
/// `noinit_itable`: the kernel does not zero the inode tables `mkfs` left to it (a copy of a
/// sparse template has zeros there already; see `oci/disk.rs`).
pub fn mount_ext4(image: &Path, target: &Path) -> io::Result<()> {
    let (dev, _device) = attach_loop(image)?;
    // The mount holds the device from here; `_device` closing lets it clear itself if the
    // mount fails.
    let opts = Some(c"noinit_itable");
    rustix::mount::mount(dev.as_str(), target, "ext4", MountFlags::NOATIME, opts)
        .map_err(|e| at(&format!("mounting {dev} at {}", target.display()), e.into()))
}

/// [`mount_ext4`] without a place: the mount exists, attached to no mount namespace, until
/// [`attach`] puts it somewhere or the descriptor closes (which unmounts it and frees the
/// device). Mounting writes the file system's superblock and journal through to the host
/// (an `fsync` of the image each, 1-10 ms here), so the disk pool does it ahead of creates.
pub fn mount_detached(image: &Path) -> io::Result<OwnedFd> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, fsconfig_create, fsconfig_set_flag,
        fsconfig_set_string, fsmount, fsopen,
    };
    let (dev, _device) = attach_loop(image)?;
    let fs = fsopen("ext4", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", dev.as_str())?;
    fsconfig_set_flag(&fs, "noinit_itable")?;
    fsconfig_create(&fs).map_err(|e| at(&format!("mounting {dev}"), e.into()))?;
    Ok(fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOATIME,
    )?)
}

/// Put a mount from [`mount_detached`] at `target`, in the calling thread's mount namespace.
pub fn attach(mnt: OwnedFd, target: &Path) -> io::Result<()> {
    use rustix::mount::{MoveMountFlags, move_mount};
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| {
        at(
            &format!("attaching a disk at {}", target.display()),
            e.into(),
        )
    })
}

fn at(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A free loop device set up on `image` (clearing itself when its last user goes): its path,
/// and an open descriptor of it that holds it until something else (a mount) does.
fn attach_loop(image: &Path) -> io::Result<(String, std::fs::File)> {
    let rw = |p: &Path| OpenOptions::new().read(true).write(true).open(p);
    let ctl = rw(Path::new("/dev/loop-control")).map_err(|e| at("/dev/loop-control", e))?;
    let backing = rw(image).map_err(|e| at(&image.display().to_string(), e))?;
    let cfg = config(backing.as_raw_fd() as u32, image);
    for _ in 0..ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; it answers a free device's number
        // (creating one if needed) or -1 with errno.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(at("finding a free loop device", io::Error::last_os_error()));
        }
        let dev = format!("/dev/loop{n}");
        let device = rw(Path::new(&dev)).map_err(|e| at(&dev, e))?;
        // SAFETY: `cfg` is a valid `struct loop_config` that outlives the call; the kernel
        // only reads it.
        let r = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &raw const cfg) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) {
                continue; // taken by someone else since GET_FREE answered
            }
            return Err(at(&format!("setting up {dev}"), e));
        }
        return Ok((dev, device));
    }
    Err(io::Error::other(
        "no loop device stayed free long enough to be set up; try again",
    ))
}

/// Stop the ext4 file system of a loop device mounted at `target` at once, its journal and
/// what it has not written dropped: its image is about to be deleted, and unmounting it then
/// writes nothing (a plain unmount commits the journal and writes the superblock, each a
/// flush of the image on the host: ~20 ms of a removal here, ~10 with this). Refuses, and
/// changes nothing, unless `target` is the root of a mount whose device is a loop device:
/// shutting down the file system that merely holds `target` would stop the host's.
pub fn shut_down(target: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};
    let dir = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::statx(&dir, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
    let root = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
        && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    if !root || st.stx_dev_major != LOOP_MAJOR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a loop device's mount", target.display()),
        ));
    }
    let flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
    // SAFETY: EXT4_IOC_SHUTDOWN reads one u32 of flags through the pointer, which points at
    // a live local; `dir` is an open descriptor of the file system's root.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_SHUTDOWN, &raw const flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_matches_the_kernels_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        let c = config(7, Path::new("/x/disk.img"));
        assert_eq!((c.fd, c.info.flags), (7, LO_FLAGS_AUTOCLEAR));
        assert_eq!(&c.info.file_name[..11], b"/x/disk.img");
    }

    #[test]
    fn disks_mount_ahead_attach_and_only_a_loop_mount_is_shut_down() {
        assert!(
            rustix::process::geteuid().is_root(),
            "loop device tests need root (CI runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        // In a mount namespace of the test thread's own, so nothing stays mounted on the host
        // whatever happens.
        let path = tmp.path().to_path_buf();
        std::thread::spawn(move || in_own_mount_ns(&path))
            .join()
            .unwrap();
    }

    fn in_own_mount_ns(tmp: &Path) {
        use rustix::mount::{MountPropagationFlags, mount_change};
        use rustix::thread::UnshareFlags;
        // SAFETY: this test thread alone gets its own file system context and mount
        // namespace; it touches no other thread's state.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS) }.unwrap();
        mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .unwrap();
        // The host file system holding the directory is not a loop device's: refused, and it
        // still takes writes.
        let plain = tmp.join("plain");
        std::fs::create_dir(&plain).unwrap();
        let e = shut_down(&plain).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        std::fs::write(plain.join("still"), b"writable").unwrap();

        let image = ext4_image(&tmp.join("disk.img"));
        let target = tmp.join("mnt");
        std::fs::create_dir(&target).unwrap();
        mount_ext4(&image, &target).unwrap();
        // A directory inside the mount is not its root: refused too.
        std::fs::create_dir(target.join("sub")).unwrap();
        assert!(shut_down(&target.join("sub")).is_err());
        std::fs::write(target.join("file"), b"unwritten").unwrap();
        shut_down(&target).unwrap();
        assert!(
            std::fs::write(target.join("after"), b"x").is_err(),
            "a shut-down file system takes no more writes"
        );
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty()).unwrap();
        assert!(!crate::host::is_mount_point(&target));

        mounting_ahead(tmp, &target);
    }

    /// Mounted ahead, attached later: the same file system, writable where attached.
    fn mounting_ahead(tmp: &Path, target: &Path) {
        let image = ext4_image(&tmp.join("ahead.img"));
        let mnt = mount_detached(&image).unwrap();
        assert!(!crate::host::is_mount_point(target), "attached nowhere yet");
        attach(mnt, target).unwrap();
        assert!(crate::host::is_mount_point(target));
        std::fs::write(target.join("kept"), b"on the disk").unwrap();
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()).unwrap();
        mount_ext4(&image, target).unwrap();
        assert_eq!(std::fs::read(target.join("kept")).unwrap(), b"on the disk");
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()).unwrap();

        // A mount attached nowhere goes with its descriptor, and frees its loop device.
        let mnt = mount_detached(&image).unwrap();
        assert_eq!(loops_backed_by(&image), 1);
        drop(mnt);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while loops_backed_by(&image) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(loops_backed_by(&image), 0);
    }

    /// A 64 MiB ext4 image at `image`.
    fn ext4_image(image: &Path) -> std::path::PathBuf {
        std::fs::File::create(image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let mkfs = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image)
            .status()
            .unwrap();
        assert!(mkfs.success());
        image.to_path_buf()
    }

    /// How many loop devices are backed by `image`.
    fn loops_backed_by(image: &Path) -> usize {
        let want = std::fs::canonicalize(image).unwrap();
        std::fs::read_dir("/sys/block")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("loop/backing_file"))
                    .is_ok_and(|b| Path::new(b.trim()) == want)
            })
            .count()
    }
}
