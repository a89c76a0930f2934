//! `islo secret set|ls|rm`: secrets the gateway injects. A value is read from stdin (or
//! typed without echo on a terminal), never from the command line, and never shown again.

use std::io::Read;

use clap::{Args, Subcommand};
use islo_api::SecretRequest;
use islo_client::Client;

use crate::cli::Output;
use crate::{ui, usage};

#[derive(Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    cmd: SecretCmd,
}

#[derive(Subcommand)]
enum SecretCmd {
    /// Store a secret (e.g. `github`, `anthropic`, `openai`, or your own name).
    Set {
        name: String,
        /// Read the value from stdin (the default when stdin is not a terminal).
        #[arg(long)]
        from_stdin: bool,
        /// Env var that carries the secret's placeholder in sandboxes (repeatable; default:
        /// the provider's usual ones, e.g. GITHUB_TOKEN and GH_TOKEN for github).
        #[arg(long = "env", value_name = "VAR")]
        env: Vec<String>,
        /// Offer no placeholder env var at all.
        #[arg(long, conflicts_with = "env")]
        no_env: bool,
        /// Host glob the gateway injects it toward in any allowed request (repeatable;
        /// default: the provider's API hosts for anthropic, openai, cursor, github, slack).
        #[arg(long = "host", value_name = "GLOB")]
        hosts: Vec<String>,
        /// How it is injected toward those hosts (default: the provider's way).
        #[command(flatten)]
        auth: crate::cmd_gateway::AuthArgs,
    },
    /// List secrets (names only).
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a secret.
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

/// Type a value on the terminal without echo.
fn prompt_hidden(name: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("Value for secret {name} (not shown): ");
    let old = tcgetattr(&stdin)?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let mut value = String::new();
    let read = stdin.read_line(&mut value);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &old);
    eprintln!();
    read?;
    Ok(value.trim_end_matches(['\r', '\n']).to_string())
}

pub fn read_value(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !ui::stdin_tty() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s.trim_end_matches(['\r', '\n']).to_string());
    }
    prompt_hidden(name)
}

/// `islo secret set`.
async fn set(
    client: &Client,
    name: &str,
    from_stdin: bool,
    env_vars: Option<Vec<String>>,
    hosts: Vec<String>,
    auth_strategy: Option<islo_api::AuthStrategy>,
) -> anyhow::Result<()> {
    let value = read_value(name, from_stdin)?;
    if value.is_empty() {
        return Err(usage(
            "the secret's value is empty: pipe it in, e.g. `islo secret set github --from-stdin < token.txt`",
        ));
    }
    let req = SecretRequest {
        value,
        env_vars,
        hosts: (!hosts.is_empty()).then_some(hosts),
        auth_strategy,
    };
    let s = client.put_secret(name, &req).await?;
    eprintln!("Stored secret {}", s.name);
    if !s.env_vars.is_empty() {
        eprintln!("Sandboxes see a placeholder in {}", s.env_vars.join(", "));
    }
    if !s.hosts.is_empty() {
        eprintln!("The gateway injects it toward {}", s.hosts.join(", "));
    }
    Ok(())
}

pub async fn run(client: &Client, a: SecretArgs, output: Output) -> anyhow::Result<()> {
    match a.cmd {
        SecretCmd::Set {
            name,
            from_stdin,
            env,
            no_env,
            hosts,
            auth,
        } => {
            let auth = auth.strategy();
            let env = if no_env {
                Some(Vec::new())
            } else {
                (!env.is_empty()).then_some(env)
            };
            set(client, &name, from_stdin, env, hosts, auth).await
        }
        SecretCmd::Ls => {
            let all = client.secrets().await?;
            if output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            let rows = all
                .into_iter()
                .map(|s| vec![s.name, s.env_vars.join(","), s.updated_at])
                .collect();
            out!("{}", ui::table(&["NAME", "ENV", "UPDATED"], rows));
            Ok(())
        }
        SecretCmd::Rm { name } => {
            client.delete_secret(&name).await?;
            eprintln!("Removed secret {name}");
            Ok(())
        }
    }
}
