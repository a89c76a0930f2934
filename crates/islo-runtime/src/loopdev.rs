//! A sandbox's disk image mounted through a loop device set up here, with the kernel's own
//! calls (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`), instead of util-linux's `mount -o loop`:
//! that one first reads every loop device on the host to find one already backed by the same
//! file, so its cost grew with the number of sandboxes (tens of milliseconds per create with
//! a few hundred). The device is set to clear itself when its last user goes (the mount), as
//! `mount -o loop` does, so unmounting frees it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::mount::MountFlags;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
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
    let at = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
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
        // The mount holds the device from here; `device` closing lets it clear itself
        // if the mount fails.
        let opts = Some(c"noinit_itable");
        return rustix::mount::mount(dev.as_str(), target, "ext4", MountFlags::NOATIME, opts)
            .map_err(|e| at(&format!("mounting {dev} at {}", target.display()), e.into()));
    }
    Err(io::Error::other(
        "no loop device stayed free long enough to be set up; try again",
    ))
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
}
