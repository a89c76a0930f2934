//! The original destination of a redirected connection (`SO_ORIGINAL_DST`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

/// Where the sandbox meant to connect before nftables redirected it here.
pub fn original_dst(sock: &impl AsRawFd) -> std::io::Result<SocketAddr> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>())
        .map_err(std::io::Error::other)?;
    // SAFETY: the fd is a live socket owned by the caller; `addr` and `len` point to a
    // sockaddr_in-sized buffer and its length, as SO_ORIGINAL_DST requires.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&raw mut addr).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(addr.sin_port),
    )))
}
