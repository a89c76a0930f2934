//! A sandbox's link made (and deleted) with rtnetlink messages from islod itself: the veth
//! pair, both ends' addresses, the loopback and the default route. `ip` did the same in two helper processes
//! (~6 ms a start, most of it starting them); here it is one socket per network namespace and
//! a dozen messages, each acknowledged.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::NetworkSpec;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// Make what is not there yet, and say so (an acknowledgement or the error).
const MAKE: u16 = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
/// The sandbox end's name, in its namespace.
const PEER: &str = "eth0";

/// One request being built: the header, then the family's fixed part, then attributes.
struct Msg {
    buf: Vec<u8>,
    /// Where each open nested attribute starts (its length is filled in when it closes).
    open: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `bytes`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
        buf.extend_from_slice(fixed);
        Self {
            buf,
            open: Vec::new(),
        }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn name(self, kind: u16, name: &str) -> Self {
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        self.attr(kind, &z)
    }

    fn nest(mut self, kind: u16) -> Self {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    /// Raw bytes inside the open nest (a peer's `ifinfomsg`).
    fn raw(mut self, data: &[u8]) -> Self {
        self.buf.extend_from_slice(data);
        self
    }

    fn end(mut self) -> Self {
        if let Some(at) = self.open.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn bytes(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ifinfo(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn ifaddr(prefix: u8, index: i32) -> [u8; 8] {
    let mut b = [AF_INET, prefix, 0, 0, 0, 0, 0, 0];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// A route message's fixed part: the main table, unicast, universe scope, `dst_len` bits.
fn rtmsg(dst_len: u8) -> [u8; 12] {
    [
        AF_INET,
        dst_len,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        0,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ]
}

/// A route netlink socket in the calling thread's network namespace.
fn socket() -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE
    )?;
    Ok(fd)
}

/// Send one request and read its answer: an ifinfomsg's index for `RTM_GETLINK`, else the
/// acknowledgement (0) or the kernel's error.
fn ask(sock: &OwnedFd, msg: Vec<u8>) -> io::Result<i32> {
    rustix::net::send(sock, &msg, SendFlags::empty())?;
    let mut buf = [0u8; 8192];
    let n = rustix::net::recv(sock, &mut buf, RecvFlags::empty())?.0;
    let reply = buf.get(..n.min(buf.len())).unwrap_or_default();
    let field = |at: usize| -> io::Result<[u8; 4]> {
        reply
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| io::Error::other("a short rtnetlink answer"))
    };
    let kind = u16::from_ne_bytes([
        reply.get(4).copied().unwrap_or(0),
        reply.get(5).copied().unwrap_or(0),
    ]);
    match kind {
        NLMSG_ERROR => match i32::from_ne_bytes(field(16)?) {
            0 => Ok(0),
            e => Err(io::Error::from_raw_os_error(-e)),
        },
        RTM_NEWLINK => Ok(i32::from_ne_bytes(field(16 + 4)?)),
        other => Err(io::Error::other(format!(
            "an unexpected rtnetlink answer ({other})"
        ))),
    }
}

/// A link's index: the answer is the link itself (no acknowledgement asked for).
fn index_of(sock: &OwnedFd, name: &str) -> io::Result<i32> {
    let req = Msg::new(RTM_GETLINK, 0, &ifinfo(0, 0, 0)).name(IFLA_IFNAME, name);
    ask(sock, req.bytes())
}

fn up(sock: &OwnedFd, index: i32) -> io::Result<()> {
    let req = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfo(index, IFF_UP, IFF_UP));
    ask(sock, req.bytes()).map(drop)
}

fn address(sock: &OwnedFd, index: i32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let req = Msg::new(RTM_NEWADDR, MAKE, &ifaddr(prefix, index))
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    ask(sock, req.bytes()).map(drop)
}

/// Make the pair: `n.host_if` here, [`PEER`] in the namespace `netns`, both down.
fn make_pair(sock: &OwnedFd, n: &NetworkSpec, netns: &impl AsFd) -> io::Result<()> {
    let fd = u32::try_from(netns.as_fd().as_raw_fd())
        .map_err(|_| io::Error::other("a negative descriptor"))?;
    let req = Msg::new(RTM_NEWLINK, MAKE, &ifinfo(0, 0, 0))
        .name(IFLA_IFNAME, &n.host_if)
        .nest(IFLA_LINKINFO)
        .name(IFLA_INFO_KIND, "veth")
        .nest(IFLA_INFO_DATA)
        .nest(VETH_INFO_PEER)
        .raw(&ifinfo(0, 0, 0))
        .name(IFLA_IFNAME, PEER)
        .attr(IFLA_NET_NS_FD, &fd.to_ne_bytes())
        .end()
        .end()
        .end();
    ask(sock, req.bytes()).map(drop)
}

/// The host end: the pair, its address, no IPv6 (the sandbox's link-local address must not
/// reach host services), up.
pub(crate) fn link_host(n: &NetworkSpec, netns: &impl AsFd) -> io::Result<()> {
    let sock = socket()?;
    make_pair(&sock, n, netns)?;
    let index = index_of(&sock, &n.host_if)?;
    address(&sock, index, n.host_addr, n.prefix_len)?;
    let v6 = std::path::Path::new("/proc/sys/net/ipv6/conf")
        .join(&n.host_if)
        .join("disable_ipv6");
    if v6.exists() {
        std::fs::write(&v6, "1")?;
    }
    up(&sock, index)
}

/// The sandbox end, from a thread in its namespace: loopback up, [`PEER`] addressed and up,
/// the default route through the host end.
pub(crate) fn link_sandbox(n: &NetworkSpec) -> io::Result<()> {
    let sock = socket()?;
    up(&sock, index_of(&sock, "lo")?)?;
    let index = index_of(&sock, PEER)?;
    address(&sock, index, n.sandbox_addr, n.prefix_len)?;
    up(&sock, index)?;
    let req = Msg::new(RTM_NEWROUTE, MAKE, &rtmsg(0))
        .attr(RTA_GATEWAY, &n.host_addr.octets())
        .attr(RTA_OIF, &index.to_ne_bytes());
    ask(&sock, req.bytes()).map(drop)
}

/// Delete the link `name` (a veth's peer goes with it). This waits for the kernel's RCU
/// barrier after the link has left the tables: ~25 ms, for a thread that can wait.
pub(crate) fn delete(name: &str) -> io::Result<()> {
    let req = Msg::new(RTM_DELLINK, NLM_F_ACK, &ifinfo(0, 0, 0)).name(IFLA_IFNAME, name);
    ask(&socket()?, req.bytes()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::thread::UnshareFlags;

    /// A network namespace of the calling thread's own (root only: this test needs it).
    fn own_netns() {
        // SAFETY: only CLONE_NEWNET is unshared, on a thread of the test's own that makes no
        // other use of the network; nothing else of the process changes.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
            .expect("a network namespace of its own (this test needs root)");
    }

    #[test]
    fn a_pair_is_made_addressed_routed_and_deleted() {
        std::thread::spawn(|| {
            own_netns(); // this thread stands for the host
            let peer = std::thread::spawn(|| {
                own_netns();
                std::fs::File::open("/proc/thread-self/ns/net").unwrap()
            })
            .join()
            .unwrap();
            let n = NetworkSpec {
                host_if: "rtnltest0".into(),
                host_addr: Ipv4Addr::new(10, 99, 0, 1),
                sandbox_addr: Ipv4Addr::new(10, 99, 0, 2),
                prefix_len: 30,
            };
            link_host(&n, &peer).unwrap();
            let err = link_host(&n, &peer).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
            let sock = socket().unwrap();
            assert!(index_of(&sock, "rtnltest0").unwrap() > 0);
            let v6 = std::fs::read_to_string("/proc/sys/net/ipv6/conf/rtnltest0/disable_ipv6");
            assert!(
                v6.is_err() || v6.unwrap().trim() == "1",
                "no IPv6 on the host end"
            );
            let in_peer = |f: fn()| {
                let peer = peer.try_clone().unwrap();
                std::thread::spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        peer.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .unwrap();
                    f()
                })
                .join()
                .unwrap()
            };
            in_peer(|| {
                let n = NetworkSpec {
                    host_if: "rtnltest0".into(),
                    host_addr: Ipv4Addr::new(10, 99, 0, 1),
                    sandbox_addr: Ipv4Addr::new(10, 99, 0, 2),
                    prefix_len: 30,
                };
                link_sandbox(&n).unwrap();
                let routes = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
                // The default route (destination 0) through 10.99.0.1 (little-endian hex).
                assert!(routes.contains("eth0\t00000000\t0100630A"), "{routes}");
            });
            delete("rtnltest0").unwrap();
            assert!(index_of(&sock, "rtnltest0").is_err());
            in_peer(|| {
                let gone = index_of(&socket().unwrap(), PEER).unwrap_err();
                assert_eq!(gone.raw_os_error(), Some(libc::ENODEV), "the peer went too");
            });
            let err = delete("rtnltest0").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let m = Msg::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfo(7, IFF_UP, IFF_UP))
            .name(IFLA_IFNAME, "abc")
            .nest(IFLA_LINKINFO)
            .name(IFLA_INFO_KIND, "veth")
            .end()
            .bytes();
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(m.len() % 4, 0);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        // IFLA_IFNAME "abc\0": 8 bytes, then the nest of 4 + "veth\0" padded to 12.
        assert_eq!(&m[32..40], &[8, 0, 3, 0, b'a', b'b', b'c', 0]);
        assert_eq!(u16::from_ne_bytes(m[40..42].try_into().unwrap()), 4 + 12);
        assert_eq!(
            u16::from_ne_bytes(m[6..8].try_into().unwrap()),
            NLM_F_CREATE | NLM_F_REQUEST
        );
    }
}
