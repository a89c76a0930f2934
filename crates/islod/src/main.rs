//! `islod`: the islo server binary.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The cluster's nodes: list them, cordon, drain (needs `cluster:` in islod.yaml).
    Nodes {
        #[command(subcommand)]
        cmd: Option<NodesCmd>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum NodesCmd {
    /// List the nodes, their load and health.
    #[command(alias = "ls")]
    List {
        /// Output format: table or json.
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Take no new sandboxes on NAME (those it has keep running).
    Cordon { name: String },
    /// Cordon NAME and mark it as on its way out.
    Drain { name: String },
    /// Let NAME take new sandboxes again.
    Uncordon { name: String },
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
    // Every command may speak TLS (etcd, other nodes, registries): one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
            let cluster = islod::server::connect_cluster(&cfg, Some(Duration::from_secs(20)))?;
            let store = islod::server::open_store(&cfg.state_dir, cluster.as_deref())?;
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
        Cmd::Nodes { cmd } => {
            let cfg = Config::load(&o, &|k| std::env::var(k).ok())?;
            nodes(
                &cfg,
                cmd.unwrap_or(NodesCmd::List {
                    output: "table".into(),
                }),
            )
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
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting tokio")?;
            rt.block_on(islod::server::serve(cfg))
        }
    }
}

fn nodes(cfg: &Config, cmd: NodesCmd) -> anyhow::Result<()> {
    use islod::cluster::{NodeAdmin, membership};
    let Some(cluster) = islod::server::connect_cluster(cfg, Some(Duration::from_secs(20)))? else {
        anyhow::bail!(
            "this islod is a single host: `islod nodes` needs a cluster: section in islod.yaml"
        );
    };
    let set = |name: &str, a: NodeAdmin, what: &str| -> anyhow::Result<()> {
        let prefix = &cluster.config.prefix;
        let known = membership::live_nodes(&cluster.etcd, prefix)?
            .iter()
            .any(|n| n.name == name)
            || membership::admin_settings(&cluster.etcd, prefix)?
                .iter()
                .any(|(n, _)| n == name);
        if !known {
            anyhow::bail!(
                "no node named {name} is registered; `islod nodes` lists the cluster's nodes"
            );
        }
        membership::set_admin(&cluster.etcd, prefix, name, a)?;
        eprintln!("node {name} {what}");
        Ok(())
    };
    match cmd {
        NodesCmd::Cordon { name } => set(
            &name,
            NodeAdmin {
                cordoned: true,
                draining: false,
            },
            "cordoned: it takes no new sandboxes",
        ),
        NodesCmd::Drain { name } => set(
            &name,
            NodeAdmin {
                cordoned: true,
                draining: true,
            },
            "draining: it takes no new sandboxes",
        ),
        NodesCmd::Uncordon { name } => {
            set(&name, NodeAdmin::default(), "takes new sandboxes again")
        }
        NodesCmd::List { output } => {
            let store = islod::server::open_store(&cfg.state_dir, Some(&cluster))?;
            let list = islod::cluster::node_list(&cluster, &store)?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&list)?),
                "table" => {
                    println!(
                        "{:<20} {:<9} {:>9} {:>8} {:>6} {:>9} {:>9}  ADVERTISE",
                        "NAME", "HEALTH", "SANDBOXES", "RUNNING", "VCPUS", "MEMORY", "DISK"
                    );
                    for n in list.nodes {
                        let health = serde_json::to_value(n.health)?;
                        println!(
                            "{:<20} {:<9} {:>9} {:>8} {:>6} {:>7}Gi {:>7}Gi  {}",
                            n.name,
                            health.as_str().unwrap_or_default(),
                            n.sandboxes,
                            n.running,
                            n.vcpus,
                            n.memory_mb / 1024,
                            n.disk_gb,
                            n.advertise
                        );
                    }
                }
                other => anyhow::bail!("unknown output format {other:?}: use table or json"),
            }
            Ok(())
        }
    }
}
