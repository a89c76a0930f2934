//! `islod`: the islo server binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use islod::config::{Config, Overrides};
use islod::http::{hash_secret, new_api_key};

#[derive(Parser)]
#[command(name = "islod", version, about = "The islo sandbox server")]
struct Cli {
    /// Config file (YAML); default /etc/islo/islod.yaml (root) or ~/.config/islo/islod.yaml.
    #[arg(long, global = true, env = "ISLOD_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (database, images, sandboxes).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API on a unix socket (and TCP with --listen).
    Serve {
        /// Unix socket path; default <state-dir>/islod.sock.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Also listen on TCP, e.g. 127.0.0.1:8080 (bearer auth required there).
        #[arg(long)]
        listen: Option<String>,
        /// Statically linked islo-agent binary.
        #[arg(long)]
        agent_path: Option<PathBuf>,
        /// OCI runtime: crun, runc, a path, or fake (no isolation; development only).
        #[arg(long)]
        runtime: Option<String>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Mint a key; it is printed once and stored only as a hash.
    Create {
        name: String,
        /// Tenant owning the key (created if missing).
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// List keys (never their secrets).
    #[command(alias = "ls")]
    List,
}

fn main() {
    // The error alone, without a backtrace: it is the last line of islod.log, which `islo`
    // shows when islod could not start.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("islod: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut o = Overrides {
        config: cli.config,
        state_dir: cli.state_dir,
        ..Default::default()
    };
    match cli.cmd {
        Cmd::Openapi => {
            print!("{}", islod::http::openapi::document());
            Ok(())
        }
        Cmd::Keys { cmd } => {
            let cfg = Config::load(&o, &|k| std::env::var(k).ok())?;
            let store = islod::server::open_store(&cfg.state_dir)?;
            match cmd {
                KeysCmd::Create { name, tenant } => {
                    let tid = store.ensure_tenant(&tenant)?;
                    let key = new_api_key();
                    store.insert_key(&tid, &name, &hash_secret(&key))?;
                    eprintln!("API key {name:?} for tenant {tenant:?} (shown once; store it now):");
                    println!("{key}");
                }
                KeysCmd::List => {
                    println!("{:<38} {:<16} {:<20} CREATED", "ID", "TENANT", "NAME");
                    for (id, t, n, c) in store.list_keys()? {
                        println!("{id:<38} {t:<16} {n:<20} {c}");
                    }
                }
            }
            Ok(())
        }
        Cmd::Serve {
            socket,
            listen,
            agent_path,
            runtime,
        } => {
            o.socket = socket;
            o.listen = listen;
            o.agent_path = agent_path;
            o.runtime = runtime;
            let cfg = Config::load(&o, &|k| std::env::var(k).ok())?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("ISLOD_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            rustls::crypto::ring::default_provider()
                .install_default()
                .map_err(|_| anyhow::anyhow!("installing the TLS crypto provider"))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting tokio")?;
            rt.block_on(islod::server::serve(cfg))
        }
    }
}
