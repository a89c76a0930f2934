//! `Connect`: a TCP connection to the sandbox's loopback, relayed raw over the agent socket.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use islo_agent::proto::{self, FrameKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to `port` (IPv4 loopback, then IPv6) and relay until both directions end.
pub fn run(mut client: UnixStream, port: u16) -> Result<(), proto::ProtoError> {
    let addrs: [SocketAddr; 2] = [
        ([127, 0, 0, 1], port).into(),
        ([0u16, 0, 0, 0, 0, 0, 0, 1], port).into(),
    ];
    let mut last = None;
    let tcp = addrs
        .iter()
        .find_map(|a| match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => Some(s),
            Err(e) => {
                last = Some(e);
                None
            }
        });
    let Some(tcp) = tcp else {
        let why = last.map(|e| e.to_string()).unwrap_or_default();
        let m = format!(
            "cannot connect to port {port} in the sandbox ({why}): is anything listening there?"
        );
        return proto::write_error(&mut client, proto::ErrorKind::Refused, &m);
    };
    let _ = tcp.set_nodelay(true);
    proto::write_json(&mut client, FrameKind::Reply, &serde_json::json!({}))?;
    let (c2, t2) = (client.try_clone()?, tcp.try_clone()?);
    let up = std::thread::spawn(move || pump(c2, t2, |t| t.shutdown(Shutdown::Write)));
    pump(tcp, client, |c| c.shutdown(Shutdown::Write));
    let _ = up.join();
    Ok(())
}

/// Copy `from` into `to` until end of stream, then shut `to`'s write half.
fn pump<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W) -> io::Result<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = close(&to);
}
