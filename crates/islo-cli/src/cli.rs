//! Command-line grammar and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{cmd_lifecycle, cmd_ls, cmd_use, connect};

#[derive(Parser)]
#[command(
    name = "islo",
    version,
    about = "Secure sandboxes for untrusted code and AI agents"
)]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Project file to use instead of ./islo.yaml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Ignore ./islo.yaml.
    #[arg(long, global = true)]
    pub no_config: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Plain,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Use a sandbox: create it if needed, then open a shell or run a command in it.
    Use(Box<UseArgs>),
    /// List sandboxes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show the server, auth and tools, or one sandbox in detail.
    Status {
        /// Sandbox name (omit for general status).
        name: Option<String>,
    },
    /// Stop running sandboxes without removing them.
    Stop {
        /// Sandbox names or ids.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Pause running sandboxes: their processes and memory are saved to their disks and
    /// their memory and CPU freed, until `islo resume`.
    Pause {
        /// Sandbox names or ids.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Bring paused sandboxes back where they were, or start stopped ones again.
    Resume {
        /// Sandbox names or ids.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove sandboxes completely (stops and deletes).
    #[command(visible_alias = "delete")]
    Rm {
        /// Sandbox names or ids.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// The audit log: exec, interactive and agent sessions, and what they printed.
    Logs(LogsArgs),
    /// Environments: named sets of variables and secrets for new sandboxes (`ls`, `get`, `create`, `update`, `rm`, `default`).
    #[command(visible_alias = "env")]
    Environment(crate::cmd_environment::EnvironmentArgs),
    /// Incoming webhooks: URLs that create, start, remove sandboxes or forward to a port inside.
    Webhook(crate::cmd_webhook::WebhookArgs),
    /// Secrets the gateway injects into sandbox requests (never visible inside sandboxes).
    Secret(crate::cmd_secret::SecretArgs),
    /// Gateway profiles and rules: `ls`, `create`, `NAME`, `NAME update|rm|add-rule|update-rule|rm-rule|rule ls|reorder`; `log SANDBOX` shows its decisions.
    Gateway {
        /// The subcommand and its arguments (see `islo gateway create --help` and so on).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Copy files and directories between here and a sandbox (`NAME:PATH` on one side).
    Cp {
        /// Source: a local path or NAME:PATH.
        src: String,
        /// Destination: a local path or NAME:PATH.
        dst: String,
    },
    /// Forward a local port to a port inside a sandbox (blocks until Ctrl-C).
    #[command(visible_alias = "pf")]
    PortForward {
        /// Sandbox name.
        name: String,
        /// `PORT`, or `LOCAL:REMOTE` (LOCAL 0 picks a free port).
        #[arg(value_name = "[LOCAL:]REMOTE")]
        ports: String,
    },
    /// SSH into a sandbox; `--setup` makes plain OpenSSH (ssh, scp, sftp, rsync) reach `NAME.islo`.
    Ssh(SshArgs),
    /// Save, list, remove, export and import snapshots of sandboxes' filesystems.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Share a sandbox's port at a public URL (anyone with the URL can reach it until it expires).
    Share(crate::cmd_share::ShareArgs),
    /// List a sandbox's shares, or the requests one served (`--requests ID`).
    Shares(crate::cmd_share::SharesArgs),
    /// Revoke a share (by id or URL), closing its open connections.
    Unshare(crate::cmd_share::UnshareArgs),
    /// API keys of your tenant: create (secret shown once), ls, deactivate, activate, rm.
    #[command(name = "api-key", visible_alias = "key")]
    ApiKey(crate::cmd_key::KeyArgs),
    /// A raw authenticated API call, e.g. `islo api /sandboxes` or `islo api /api-keys -d '{"name":"ci"}'`.
    Api(crate::cmd_key::ApiArgs),
    /// Check this machine, islod and its host, and say what to fix.
    Doctor,
    /// Serve sandboxes as tools to an AI agent over the Model Context Protocol (stdio, or `--http ADDR`).
    Mcp(crate::cmd_mcp::McpArgs),
    /// Open the web dashboard (for the local islod: served on a loopback port until Ctrl-C).
    Dashboard(crate::cmd_dashboard::DashboardArgs),
    /// Store an API key for a remote islod.
    Login {
        /// The key; read from standard input when omitted (keeps it out of the process table).
        #[arg(long, value_name = "KEY", num_args = 0..=1, default_missing_value = "-", required_unless_present = "tool")]
        api_key: Option<String>,
        /// Store a model provider's key for agents instead (anthropic, openai, cursor): from its
        /// usual env var (e.g. ANTHROPIC_API_KEY), else standard input or a prompt.
        #[arg(long, value_name = "PROVIDER", conflicts_with = "api_key")]
        tool: Option<String>,
    },
    /// Forget the stored API key.
    Logout,
}

#[derive(Args)]
pub struct UseArgs {
    /// Sandbox name (else `sandbox:` in islo.yaml, else generated).
    pub name: Option<String>,
    /// Image for a new sandbox.
    #[arg(short, long, env = "ISLO_IMAGE")]
    pub image: Option<String>,
    /// Working directory (relative to /workspace, or absolute).
    #[arg(long)]
    pub workdir: Option<String>,
    /// Environment variable KEY=VALUE (repeatable; wins over --env-file).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Environment variables from a dotenv file (repeatable; later files win).
    #[arg(long, value_name = "PATH")]
    pub env_file: Vec<std::path::PathBuf>,
    /// User to run commands as.
    #[arg(long, default_value = "islo")]
    pub run_as_user: String,
    /// vCPUs of a new sandbox.
    #[arg(long, env = "ISLO_CPU")]
    pub cpu: Option<u32>,
    /// Memory of a new sandbox, in MB.
    #[arg(long, env = "ISLO_MEMORY_MB")]
    pub memory: Option<u32>,
    /// Disk of a new sandbox, in GB.
    #[arg(long, env = "ISLO_DISK_GB")]
    pub disk: Option<u32>,
    /// Git repository cloned into /workspace/REPO at creation: github://owner/repo[:branch]
    /// or https://host/path/repo.git[:branch] (repeatable; through the gateway).
    #[arg(long, value_name = "REPO")]
    pub source: Vec<String>,
    /// When a --source cannot be cloned, keep the new sandbox (failed, with the reason) to
    /// look into instead of removing it.
    #[arg(long)]
    pub keep_failed: bool,
    /// Isolation class of a new sandbox: `container` (namespaces, a user namespace and
    /// seccomp under crun or runc) or `gvisor` (gVisor's user-space kernel under runsc);
    /// default: the server's. `islo doctor` lists what this host offers.
    #[arg(long, value_name = "CLASS")]
    pub isolation: Option<String>,
    /// In a cluster: the node to create a new sandbox on (default: the least loaded node that
    /// takes new sandboxes; `islod nodes` lists them).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Pause a new sandbox after this long without activity (`90s`, `10m`, `2h`; lifecycle).
    #[arg(long, value_name = "DURATION", value_parser = lifecycle_secs)]
    pub pause_after_idle: Option<u64>,
    /// Pause a new sandbox after it has run this long since it started or resumed.
    #[arg(long, value_name = "DURATION", value_parser = lifecycle_secs)]
    pub pause_after: Option<u64>,
    /// Delete a new sandbox this long after its creation (`24h`, `7d`).
    #[arg(long, value_name = "DURATION", value_parser = lifecycle_secs)]
    pub delete_after: Option<u64>,
    /// Whether activity (a command, a terminal, SSH, a port-forward, the files API) resumes
    /// the new sandbox when it is paused.
    #[arg(long, value_name = "WHEN", value_parser = ["never", "on_activity"])]
    pub auto_resume: Option<String>,
    /// Create the sandbox from a snapshot (its files, image, env and workdir).
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,
    /// Gateway profile a new sandbox is bound to (default: the tenant's default profile).
    #[arg(long, value_name = "NAME")]
    pub gateway_profile: Option<String>,
    /// Environment a new sandbox gets variables and secrets from (default: the tenant's
    /// default environment, if any).
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// Session to attach to (default `main`); created with the login shell when missing.
    #[arg(short, long)]
    pub session: Option<String>,
    /// Start a new session with a generated name.
    #[arg(long)]
    pub new_session: bool,
    /// List the sandbox's sessions and exit.
    #[arg(long)]
    pub list_sessions: bool,
    /// Start a coding agent (claude, codex, opencode, cursor, or one configured in islod);
    /// without a name, whichever the image has. Its provider key is injected by the gateway.
    #[arg(long, value_name = "AGENT", num_args = 0..=1, default_missing_value = "auto")]
    pub agent: Option<String>,
    /// With --agent: run it on this prompt in a background session and return at once.
    #[arg(long, value_name = "PROMPT")]
    pub task: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// A lifecycle period: `90`, `90s`, `10m`, `2h`, `7d`, in whole seconds.
fn lifecycle_secs(v: &str) -> Result<u64, String> {
    let secs = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(v)
            .map_err(|_| format!("{v:?} is not a duration: use 90s, 10m, 2h or 7d"))?
            .as_secs(),
    };
    if secs == 0 {
        return Err("must be at least one second".into());
    }
    Ok(secs)
}

#[derive(Args)]
pub struct SshArgs {
    /// Create a key, get a certificate from islod and add a `Host *.islo` block to ~/.ssh/config.
    #[arg(long, conflicts_with = "remove")]
    pub setup: bool,
    /// Remove islo's block from ~/.ssh/config.
    #[arg(long)]
    pub remove: bool,
    /// `NAME [-- CMD…]`, or `proxy HOST PORT` (the ProxyCommand the setup installs).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "NAME"
    )]
    pub args: Vec<String>,
}

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// Save a sandbox's filesystem (running or stopped) as a snapshot.
    Save {
        /// Sandbox name.
        sandbox: String,
        /// Snapshot name [default: SANDBOX-YYYYMMDD-HHMMSS].
        #[arg(long)]
        name: Option<String>,
        /// Return at once while the snapshot is saved in the background.
        #[arg(long = "async")]
        no_wait: bool,
        /// Save the running processes and their memory too: sandboxes made from the snapshot
        /// start with them running.
        #[arg(long)]
        memory: bool,
    },
    /// List snapshots.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove snapshots no sandbox uses.
    #[command(visible_alias = "delete")]
    Rm {
        /// Snapshot names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Write a snapshot as an OCI image archive (`--to oci-archive:PATH`).
    Export {
        name: String,
        /// Destination: `oci-archive:PATH` (push it on with any OCI tool, e.g. skopeo).
        #[arg(long, value_name = "oci-archive:PATH")]
        to: String,
    },
    /// Create a snapshot from an OCI image archive that `export` wrote.
    Import {
        /// `oci-archive:PATH` or a path.
        archive: String,
        /// Name of the new snapshot.
        #[arg(long)]
        name: String,
        /// Restore the running processes a memory snapshot's archive holds (CRIU restores
        /// them as root: only for archives from a maker you trust); else the files alone.
        #[arg(long)]
        trust_memory: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogType {
    Agent,
    Exec,
    Interactive,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Sandbox name or ID.
    pub sandbox: String,
    /// A session ID: print what it printed.
    pub session: Option<String>,
    /// Which sessions: agent (coding-agent transcripts), exec or interactive [default: agent].
    #[arg(long = "type", value_enum)]
    pub r#type: Option<LogType>,
    /// Stream a session's output live until it ends (Ctrl-C stops).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N entries (sessions when listing).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only the first N entries of a session.
    #[arg(long, value_name = "N")]
    pub head: Option<usize>,
    /// Only since a duration ago (30m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Print a session as an asciinema v2 recording (`islo logs S ID --asciinema > s.cast`).
    #[arg(long, requires = "session")]
    pub asciinema: bool,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only sandboxes in this status (repeatable): starting, running, stopping, stopped, paused, failed, deleted.
    #[arg(long)]
    pub status: Vec<String>,
    /// Deleted sandboxes too (their records stay readable by id).
    #[arg(short, long)]
    pub all: bool,
}

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let project = || crate::project::load(cli.config.as_deref(), cli.no_config);
    match cli.cmd {
        Cmd::Login {
            tool: Some(tool), ..
        } => crate::cmd_agent::login_tool(&connect::client().await?, &tool)
            .await
            .map(|_| 0),
        Cmd::Login { api_key, .. } => connect::login(api_key.as_deref().unwrap_or("-")).map(|_| 0),
        Cmd::Logout => connect::logout().map(|_| 0),
        Cmd::Doctor => {
            crate::cmd_doctor::run(cli.config.as_deref(), cli.no_config, cli.output).await
        }
        Cmd::Mcp(a) => crate::cmd_mcp::run(a).await,
        Cmd::Dashboard(a) => crate::cmd_dashboard::run(a).await,
        Cmd::Use(a) => cmd_use::run(*a, project()?.as_ref(), cli.output).await,
        Cmd::Ls(a) => cmd_ls::ls(&connect::client().await?, &a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Status { name: Some(n) } => {
            cmd_ls::status_one(&connect::client().await?, &n, cli.output)
                .await
                .map(|_| 0)
        }
        Cmd::Status { name: None } => cmd_ls::status_all(project()?.as_ref(), cli.output)
            .await
            .map(|_| 0),
        Cmd::Stop { names, force } => cmd_lifecycle::stop(&connect::client().await?, &names, force)
            .await
            .map(|_| 0),
        Cmd::Logs(a) => crate::cmd_logs::run(&connect::client().await?, &a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Share(a) => crate::cmd_share::share(&connect::client().await?, &a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Shares(a) => crate::cmd_share::shares(&connect::client().await?, &a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Unshare(a) => crate::cmd_share::unshare(&connect::client().await?, &a)
            .await
            .map(|_| 0),
        Cmd::ApiKey(a) => crate::cmd_key::run(&connect::client().await?, a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Api(a) => crate::cmd_key::api(&connect::client().await?, &a).await,
        Cmd::Environment(a) => {
            crate::cmd_environment::run(&connect::client().await?, a, cli.output)
                .await
                .map(|_| 0)
        }
        Cmd::Webhook(a) => crate::cmd_webhook::run(&connect::client().await?, a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Secret(a) => crate::cmd_secret::run(&connect::client().await?, a, cli.output)
            .await
            .map(|_| 0),
        Cmd::Gateway { args } => {
            crate::cmd_gateway::run(&connect::client().await?, &args, cli.output)
                .await
                .map(|_| 0)
        }
        Cmd::Cp { src, dst } => crate::cmd_cp::run(&connect::client().await?, &src, &dst)
            .await
            .map(|_| 0),
        Cmd::PortForward { name, ports } => {
            crate::cmd_port_forward::run(&connect::client().await?, &name, &ports)
                .await
                .map(|_| 0)
        }
        Cmd::Ssh(a) => crate::cmd_ssh::run(a).await,
        Cmd::Snapshot(c) => crate::cmd_snapshot::run(&connect::client().await?, c, cli.output)
            .await
            .map(|_| 0),
        Cmd::Pause { names } => cmd_lifecycle::pause(&connect::client().await?, &names)
            .await
            .map(|_| 0),
        Cmd::Resume { names } => cmd_lifecycle::resume(&connect::client().await?, &names)
            .await
            .map(|_| 0),
        Cmd::Rm { names, force } => cmd_lifecycle::rm(&connect::client().await?, &names, force)
            .await
            .map(|_| 0),
    }
}
