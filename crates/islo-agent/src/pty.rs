//! Pseudo-terminals: open a pair, start a command on the subordinate side as the leader of a
//! new session with it as controlling terminal, resize.

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use islo_agent::TtySize;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// Open a PTY pair: (controller, subordinate).
pub fn open(size: TtySize) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&controller)?;
    unlockpt(&controller)?;
    let name = ptsname(&controller, Vec::new())?;
    let sub = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    resize(&controller, size)?;
    Ok((controller, sub))
}

/// Set the window size (the foreground process group gets SIGWINCH).
pub fn resize(controller: impl AsFd, size: TtySize) -> std::io::Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(controller, ws)?;
    Ok(())
}

/// Wire `cmd`'s stdio to `sub` and make it a session leader with `sub` as its terminal.
pub fn attach_command(cmd: &mut Command, sub: &OwnedFd) -> std::io::Result<()> {
    cmd.stdin(Stdio::from(sub.try_clone()?))
        .stdout(Stdio::from(sub.try_clone()?))
        .stderr(Stdio::from(sub.try_clone()?));
    // SAFETY: runs in the forked child before exec; setsid(2) and ioctl(TIOCSCTTY) on fd 0
    // are async-signal-safe system calls touching no memory shared with the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}
