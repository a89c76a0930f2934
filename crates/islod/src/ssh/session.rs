//! An SSH session channel: the pty and env requests, then a shell, a command or the sftp
//! subsystem, run by the agent and recorded like every exec.

use std::collections::BTreeMap;
use std::sync::Arc;

use islo_agent::TtySize;
use islo_agent::proto::FrameKind;
use islo_api::ExecRequest;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::agent_io::{
    end_recording, read_agent_frame, record, record_output, resize_entry, write_agent_frame,
};
use crate::app::{App, Recording, Tenant};

/// Where sftp-server lives in common images.
const SFTP_SERVER: &str = "for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server \
    /usr/lib/ssh/sftp-server /usr/lib/sftp-server; do [ -x \"$p\" ] && exec \"$p\"; done; \
    echo 'islo: this image has no sftp-server (install openssh-sftp-server for scp and sftp)' >&2; exit 127";

/// Who the session belongs to.
pub struct Ctx {
    pub app: Arc<App>,
    pub tenant: Tenant,
    pub sandbox: String,
    pub user: String,
}

type Rec = Option<Arc<Recording>>;
type Tx = ChannelWriteHalf<Msg>;

/// What the client asked for before starting.
struct Asked {
    command: Vec<String>,
    tty: Option<TtySize>,
    env: BTreeMap<String, String>,
}

fn size(cols: u32, rows: u32) -> TtySize {
    TtySize {
        cols: cols.clamp(1, 1000) as u16,
        rows: rows.clamp(1, 1000) as u16,
    }
}

/// Collect requests until one starts something; `None` when the channel closes first.
async fn asked(rx: &mut ChannelReadHalf) -> Option<Asked> {
    let (mut tty, mut env) = (None, BTreeMap::new());
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
                break (vec!["sh".into(), "-c".into(), SFTP_SERVER.into()], None);
            }
            ChannelMsg::Close => return None,
            _ => {}
        }
    };
    if tty.is_some() {
        env.entry("TERM".into())
            .or_insert_with(|| "xterm-256color".into());
    }
    Some(Asked { command, tty, env })
}

/// Serve one session channel to its end.
pub async fn run(ctx: Ctx, channel: Channel<Msg>) {
    let (mut rx, tx) = channel.split();
    let Some(a) = asked(&mut rx).await else {
        return;
    };
    let login_shell = a.command.is_empty();
    let exec = ExecRequest {
        command: a.command,
        env: (!a.env.is_empty()).then_some(a.env),
        user: Some(ctx.user.clone()),
        ..Default::default()
    };
    let started = ctx
        .app
        .exec_recorded(&ctx.tenant, &ctx.sandbox, &exec, a.tty, login_shell)
        .await;
    let (agent, rec) = match started {
        Ok((agent, rec)) => (agent, Some(rec)),
        Err(e) => return finish(&tx, format!("islo: {e}\r\n").as_bytes(), 125).await,
    };
    if let Some(t) = a.tty {
        record(&rec, "resize", resize_entry(t.cols, t.rows).as_bytes());
    }
    let Ok(agent) = crate::agent_io::to_async(agent) else {
        return;
    };
    let (ar, aw) = agent.into_split();
    let input = input(rx, aw, rec.clone());
    tokio::pin!(input);
    tokio::select! {
        () = output(ar, &tx, rec) => {}
        () = &mut input => {}
    }
}

/// Report a failure to start: a message on stderr and an exit status.
async fn finish(tx: &Tx, message: &[u8], code: u32) {
    let _ = tx.extended_data_bytes(1, message.to_vec()).await;
    let _ = tx.exit_status(code).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}

/// Client to agent: input, end of input, window changes.
async fn input(mut rx: ChannelReadHalf, mut aw: OwnedWriteHalf, rec: Rec) {
    while let Some(msg) = rx.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                record(&rec, "stdin", &data);
                write_agent_frame(&mut aw, FrameKind::Stdin, &data).await
            }
            ChannelMsg::Eof => write_agent_frame(&mut aw, FrameKind::StdinEof, b"").await,
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                let s = size(col_width, row_height);
                record(&rec, "resize", resize_entry(s.cols, s.rows).as_bytes());
                let json = serde_json::to_vec(&s).unwrap_or_default();
                write_agent_frame(&mut aw, FrameKind::Resize, &json).await
            }
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
}

/// Agent to client: output and the exit status, then the channel closes.
async fn output(mut ar: OwnedReadHalf, tx: &Tx, rec: Rec) {
    let mut code = None;
    while let Ok(Some((kind, p))) = read_agent_frame(&mut ar).await {
        let sent = match kind {
            FrameKind::Stdout => {
                record_output(&rec, "stdout", &p).await;
                tx.data_bytes(p).await
            }
            FrameKind::Stderr => {
                record_output(&rec, "stderr", &p).await;
                tx.extended_data_bytes(1, p).await
            }
            FrameKind::Exit => {
                code = serde_json::from_slice::<islo_agent::ExitStatus>(&p)
                    .ok()
                    .map(|s| s.code);
                break;
            }
            FrameKind::Error => {
                let _ = tx
                    .extended_data_bytes(1, [b"islo: ", &p[..], b"\r\n"].concat())
                    .await;
                code = Some(127);
                break;
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    end_recording(&rec, code).await;
    let _ = tx.exit_status(code.unwrap_or(255) as u32).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}
