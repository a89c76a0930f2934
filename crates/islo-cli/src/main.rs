//! `islo`: the command-line interface. It talks to islod only through its API, starting a
//! local islod itself when no remote server is configured.
//!
//! Exit codes: 0 success, 1 authentication required, 2 usage error, 3 sandbox not found,
//! 125 any other islo failure; `islo use … -- CMD` exits with CMD's code.

/// `print!` to standard output, ending quietly when the reader has gone (`islo ls | head`).
macro_rules! out {
    ($($t:tt)*) => { $crate::ui::write_out(format_args!($($t)*), false) };
}

/// `println!` to standard output, ending quietly when the reader has gone.
macro_rules! outln {
    () => { $crate::ui::write_out(format_args!(""), true) };
    ($($t:tt)*) => { $crate::ui::write_out(format_args!($($t)*), true) };
}

mod cli;
mod cmd_agent;
mod cmd_cp;
mod cmd_dashboard;
mod cmd_doctor;
mod cmd_environment;
mod cmd_gateway;
mod cmd_gateway_log;
mod cmd_key;
mod cmd_lifecycle;
mod cmd_logs;
mod cmd_logs_agent;
mod cmd_ls;
mod cmd_mcp;
mod cmd_port_forward;
mod cmd_secret;
mod cmd_session;
mod cmd_setup;
mod cmd_share;
mod cmd_snapshot;
mod cmd_ssh;
mod cmd_use;
mod cmd_webhook;
mod connect;
mod dotenv;
mod project;
mod terminal;
mod ui;

use clap::Parser;
use islo_api::ErrorCode;
use islo_client::ClientError;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub const EXIT_AUTH: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_FAILURE: i32 = 125;

/// A usage error with exit code 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: EXIT_USAGE,
        message: message.into(),
    }
    .into()
}

fn exit_for(e: &anyhow::Error) -> (i32, String) {
    if let Some(x) = e.downcast_ref::<Exit>() {
        return (x.code, x.message.clone());
    }
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return match c.code() {
            Some(ErrorCode::AuthRequired) => (
                EXIT_AUTH,
                "Authentication required: set ISLO_API_KEY or run `islo login --api-key`".into(),
            ),
            Some(ErrorCode::SandboxNotFound | ErrorCode::ResourceNotFound) => {
                (EXIT_NOT_FOUND, c.to_string())
            }
            _ => (EXIT_FAILURE, format!("{e:#}")),
        };
    }
    (EXIT_FAILURE, format!("{e:#}"))
}

fn main() {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("islo: starting: {e}");
            std::process::exit(EXIT_FAILURE);
        }
    };
    let code = match rt.block_on(cli::run(args)) {
        Ok(code) => code,
        // Standard output's reader went away (`islo logs … | head`): end quietly.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ui::EXIT_PIPE
        }
        Err(e) => {
            let (code, msg) = exit_for(&e);
            eprintln!("islo: {msg}");
            code
        }
    };
    // A keystroke reader may still block on stdin: do not wait for it.
    rt.shutdown_background();
    std::process::exit(code);
}
