//! An SSH session channel: the pty and env requests, then a shell, a command or the sftp
//! subsystem, run by the agent and recorded like every exec.

use std::collections::BTreeMap;
use std::sync::Arc;

use islo_api::{ExecRequest, PtySize};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use crate::app::{
    App, EXIT_CANNOT_START, EXIT_LOST, ExecEvent, ExecInput, ExecInputs, ExecOutput, ExecStream,
    Tenant,
};

/// Who the session belongs to.
pub struct Ctx {
    pub app: Arc<App>,
    pub tenant: Tenant,
    pub sandbox: String,
    pub user: String,
}

type Tx = ChannelWriteHalf<Msg>;

/// What the client asked for before starting.
struct Asked {
    command: Vec<String>,
    tty: Option<PtySize>,
    env: BTreeMap<String, String>,
    /// The sftp subsystem, which islod serves itself.
    sftp: bool,
}

fn size(cols: u32, rows: u32) -> PtySize {
    PtySize {
        cols: cols.clamp(1, 1000) as u16,
        rows: rows.clamp(1, 1000) as u16,
    }
}

/// Collect requests until one starts something; `None` when the channel closes first.
async fn asked(rx: &mut Channel<Msg>) -> Option<Asked> {
    let (mut tty, mut env) = (None, BTreeMap::new());
    let mut sftp = false;
    let (command, tty) = loop {
        match rx.wait().await? {
            ChannelMsg::RequestPty {
                col_width,
                row_height,
                ..
            } => {
                tty = Some(size(col_width, row_height));
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                env.insert(variable_name, variable_value);
            }
            ChannelMsg::RequestShell { .. } => break (Vec::new(), tty),
            ChannelMsg::Exec { command, .. } => {
                let line = String::from_utf8_lossy(&command).into_owned();
                break (vec!["sh".into(), "-c".into(), line], tty);
            }
            ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                sftp = true;
                break (Vec::new(), None);
            }
            ChannelMsg::Close => return None,
            _ => {}
        }
    };
    if tty.is_some() {
        env.entry("TERM".into())
            .or_insert_with(|| "xterm-256color".into());
    }
    Some(Asked {
        command,
        tty,
        env,
        sftp,
    })
}

/// Serve SFTP from islod over the channel, as the session's user.
async fn sftp(ctx: &Ctx, channel: Channel<Msg>) {
    match ctx.app.sftp_root(&ctx.tenant, &ctx.sandbox, &ctx.user) {
        Ok((root, home)) => {
            tracing::info!(sandbox = %ctx.sandbox, user = %ctx.user, "sftp session");
            // The server runs on one end of a pipe; this carries the channel to the other, so
            // the session's end is known and reported (scp wants an exit status).
            let (ours, theirs) = tokio::io::duplex(256 * 1024);
            russh_sftp::server::run(theirs, super::sftp::Sftp::new(root, home)).await;
            let (rx, tx) = channel.split();
            let (from_server, to_server) = tokio::io::split(ours);
            tokio::join!(
                client_to_sftp(rx, to_server),
                sftp_to_client(from_server, &tx)
            );
            close(&tx, 0).await;
        }
        Err(e) => {
            let (_, tx) = channel.split();
            finish(&tx, format!("islo: {e}\r\n").as_bytes(), EXIT_CANNOT_START).await;
        }
    }
}

async fn client_to_sftp(mut rx: ChannelReadHalf, mut to: impl tokio::io::AsyncWrite + Unpin) {
    use tokio::io::AsyncWriteExt;
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } if to.write_all(&data).await.is_err() => break,
            ChannelMsg::Eof | ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = to.shutdown().await;
}

async fn sftp_to_client(mut from: impl tokio::io::AsyncRead + Unpin, tx: &Tx) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.data_bytes(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Serve one session channel to its end.
pub async fn run(ctx: Ctx, mut channel: Channel<Msg>) {
    let Some(a) = asked(&mut channel).await else {
        return;
    };
    if a.sftp {
        return sftp(&ctx, channel).await;
    }
    let (rx, tx) = channel.split();
    let login_shell = a.command.is_empty();
    let exec = ExecRequest {
        command: a.command,
        env: (!a.env.is_empty()).then_some(a.env),
        user: Some(ctx.user.clone()),
        ..Default::default()
    };
    let started = match ctx.app.awake(&ctx.tenant, &ctx.sandbox).await {
        Ok(row) => ctx.app.open_exec(&row, &exec, a.tty, login_shell).await,
        Err(e) => Err(e),
    };
    let stream = match started {
        Ok(s) => s,
        Err(e) => {
            let message = format!("islo: {e}\r\n");
            return finish(&tx, message.as_bytes(), EXIT_CANNOT_START).await;
        }
    };
    let ExecStream { output, input } = stream;
    let (input, output) = (forward_input(rx, input), forward_output(output, &tx));
    tokio::pin!(input, output);
    tokio::select! {
        () = &mut output => {}
        end = &mut input => match end {
            // The client left: dropping the stream ends the command.
            InputEnd::ClientGone => {}
            // The command no longer reads (it ended, or never started): its end follows.
            InputEnd::AgentClosed => output.await,
        },
    }
}

/// Why input stopped flowing.
enum InputEnd {
    ClientGone,
    AgentClosed,
}

/// Report an end without an exit of the command's own: a message on stderr and a status.
async fn finish(tx: &Tx, message: &[u8], code: i32) {
    let _ = tx.extended_data_bytes(1, message.to_vec()).await;
    close(tx, code).await;
}

async fn close(tx: &Tx, code: i32) {
    let _ = tx
        .exit_status(u32::try_from(code).unwrap_or(EXIT_LOST as u32))
        .await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}

/// Client to sandbox: input, end of input, window changes.
async fn forward_input(mut rx: ChannelReadHalf, mut to: ExecInputs) -> InputEnd {
    while let Some(msg) = rx.wait().await {
        let input = match msg {
            ChannelMsg::Data { data } => ExecInput::Data(data.to_vec()),
            ChannelMsg::Eof => ExecInput::Eof,
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                let s = size(col_width, row_height);
                ExecInput::Resize {
                    cols: s.cols,
                    rows: s.rows,
                }
            }
            ChannelMsg::Close => break,
            _ => continue,
        };
        if !to.send(input).await {
            return InputEnd::AgentClosed;
        }
    }
    InputEnd::ClientGone
}

/// Sandbox to client: output and the exit status, then the channel closes.
async fn forward_output(mut from: ExecOutput, tx: &Tx) {
    while let Some(ev) = from.next().await {
        let sent = match ev {
            ExecEvent::Stdout(p) => tx.data_bytes(p).await,
            ExecEvent::Stderr(p) => tx.extended_data_bytes(1, p).await,
            ExecEvent::Exit(code) => return close(tx, code).await,
            ExecEvent::Error(e) => {
                let message = format!("islo: {e}\r\n");
                return finish(tx, message.as_bytes(), e.exit_code()).await;
            }
            ExecEvent::TimedOut => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}
