//! One SSH connection to one sandbox, served by russh over whatever stream carries it (the
//! `/sandboxes/{name}/ssh` WebSocket). Clients authenticate with a user certificate from
//! [`SshCa`]; shells, commands and subsystems (sftp) run through the agent like every other
//! exec, and are recorded in the audit log; `direct-tcpip` (`ssh -L`) reaches the sandbox's
//! loopback through the agent's `Connect`.

use std::sync::Arc;

use russh::keys::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ca::SshCa;
use crate::app::{App, Tenant};

/// One connection's state.
pub struct Conn {
    pub app: Arc<App>,
    pub tenant: Tenant,
    pub sandbox: String,
    pub ca: Arc<SshCa>,
    /// The user the certificate was accepted for.
    pub user: String,
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        match self.ca.verify_user(cert, &self.tenant.id, user) {
            Ok(()) => {
                self.user = user.to_string();
                Ok(Auth::Accept)
            }
            Err(why) => {
                tracing::info!(sandbox = %self.sandbox, user, why, "ssh certificate refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        let ctx = super::session::Ctx {
            app: self.app.clone(),
            tenant: self.tenant.clone(),
            sandbox: self.sandbox.clone(),
            user: self.user.clone(),
        };
        tokio::spawn(super::session::run(ctx, channel));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let port = u16::try_from(port).ok().filter(|p| *p > 0);
        let (Some(port), true) = (port, matches!(host, "localhost" | "127.0.0.1" | "::1")) else {
            // Only the sandbox's own loopback: the sandbox has no other network to offer.
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match self
            .app
            .connect_port(&self.tenant, &self.sandbox, port)
            .await
        {
            Ok(stream) => {
                reply.accept().await;
                tokio::spawn(tcp_channel(channel, stream));
            }
            Err(e) => {
                tracing::info!(sandbox = %self.sandbox, port, error = %e, "ssh -L refused");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

/// `ssh -L`: one TCP connection inside the sandbox, carried over a channel.
async fn tcp_channel(channel: Channel<Msg>, stream: tokio::net::UnixStream) {
    let (mut sr, mut sw) = stream.into_split();
    let (mut rx, tx) = channel.split();
    let up = async move {
        while let Some(msg) = rx.wait().await {
            let data = match msg {
                ChannelMsg::Data { data } => data,
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => continue,
            };
            if sw.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.data_bytes(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.eof().await;
        let _ = tx.close().await;
    };
    tokio::join!(up, down);
}
