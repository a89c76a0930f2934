//! Pseudo-terminals: open a pair, resize. (`spawn` starts a command on the subordinate side,
//! as the leader of a new session with it as controlling terminal.)

use std::os::fd::{AsFd, OwnedFd};

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
