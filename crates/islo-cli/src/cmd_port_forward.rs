//! `islo port-forward NAME [LOCAL:]REMOTE` (`pf`): listen on 127.0.0.1:LOCAL and carry every
//! connection to REMOTE on the sandbox's loopback, through islod.

use islo_api::SandboxStatus;
use islo_client::{Client, TunnelEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{EXIT_FAILURE, Exit, usage};

/// `PORT` or `LOCAL:REMOTE`; LOCAL 0 picks a free port.
pub fn parse_ports(spec: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || {
        usage(format!(
            "invalid port {spec:?}: use PORT or LOCAL:REMOTE (1-65535)"
        ))
    };
    let (l, r) = spec.split_once(':').unwrap_or((spec, spec));
    let local: u16 = l.parse().map_err(|_| bad())?;
    let remote: u16 = r.parse().map_err(|_| bad())?;
    if remote == 0 {
        return Err(bad());
    }
    Ok((local, remote))
}

/// Run until Ctrl-C.
pub async fn run(client: &Client, name: &str, spec: &str) -> anyhow::Result<()> {
    let (local, remote) = parse_ports(spec)?;
    let sb = client.get_sandbox(name).await?;
    // A paused sandbox whose policy says so is resumed by the first connection.
    let wakes = sb.status == SandboxStatus::Paused
        && islo_api::LifecyclePolicy::resumes_on_activity(sb.lifecycle.as_ref());
    if sb.status != SandboxStatus::Running && !wakes {
        let how = match sb.status {
            SandboxStatus::Paused => format!("resume it with `islo resume {name}`"),
            _ => format!("start it with `islo use {name}`"),
        };
        return Err(Exit {
            code: EXIT_FAILURE,
            message: format!("sandbox {name} is {}: {how}", sb.status.as_str()),
        }
        .into());
    }
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .map_err(|e| Exit {
            code: EXIT_FAILURE,
            message: format!(
                "cannot listen on 127.0.0.1:{local}: {e} (pick another local port: LOCAL:{remote})"
            ),
        })?;
    let bound = listener.local_addr()?.port();
    outln!("Forwarding from 127.0.0.1:{bound} -> {name}:{remote} (Ctrl-C to stop)");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("Stopped forwarding.");
                return Ok(());
            }
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else { continue };
                let (client, name) = (client.clone(), name.to_string());
                tokio::spawn(async move { carry(&client, &name, remote, conn).await });
            }
        }
    }
}

/// One local connection, carried both ways until both sides finished.
async fn carry(client: &Client, name: &str, remote: u16, conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let (mut tx, mut rx) = match client.port_forward(name, remote).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("islo: {name}:{remote}: {e}");
            return;
        }
    };
    let (mut lr, mut lw) = conn.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match lr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.eof().await;
                    break;
                }
                Ok(n) => {
                    if tx.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        tx
    };
    let down = async move {
        while let Some(ev) = rx.next().await {
            match ev {
                TunnelEvent::Data(d) => {
                    if lw.write_all(&d).await.is_err() {
                        break;
                    }
                }
                TunnelEvent::Eof => {
                    let _ = lw.shutdown().await;
                }
                TunnelEvent::Error(m) => {
                    eprintln!("islo: {name}:{remote}: {m}");
                    break;
                }
            }
        }
    };
    // The local side closes when the sandbox side ends, even if the local reader waits on.
    tokio::pin!(up);
    tokio::pin!(down);
    tokio::select! {
        tx = &mut up => {
            (&mut down).await;
            tx.close().await;
        }
        () = &mut down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_ports("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_ports("9000:80").unwrap(), (9000, 80));
        assert_eq!(parse_ports("0:80").unwrap(), (0, 80));
        for bad in ["", "x", "80:", "70000", "1:0", "a:b"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }
}
