//! Finding the server: `ISLO_COMPUTE_URL`/`ISLO_BASE_URL` for a remote islod, else the
//! embedded local one on a unix socket, started in the background when it is not running.
//! Credentials: `ISLO_API_KEY`, else the key `islo login` stored (mode 0600).

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use islo_client::{Client, Endpoint};

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for an islod that holds the state directory but does not serve yet (it
/// reconciles sandboxes first, which takes longer with many).
const HELD_TIMEOUT: Duration = Duration::from_secs(120);

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// State directory of the embedded server (`ISLO_STATE_DIR`, else the platform default).
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ISLO_STATE_DIR") {
        return d.into();
    }
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/lib/islo")
    } else {
        home().join(".local/share/islo")
    }
}

/// `$XDG_CONFIG_HOME/islo` (default `~/.config/islo`).
pub fn config_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"))
        .join("islo")
}

fn credentials_path() -> PathBuf {
    config_dir().join("credentials")
}

/// The API key to send, if any.
pub fn api_key() -> Option<String> {
    if let Ok(k) = std::env::var("ISLO_API_KEY")
        && !k.is_empty()
    {
        return Some(k);
    }
    std::fs::read_to_string(credentials_path())
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `islo login --api-key`.
pub fn login(key: &str) -> anyhow::Result<()> {
    let key = if key == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_line(&mut s)
            .context("reading the API key from standard input")?;
        s.trim().to_string()
    } else {
        key.trim().to_string()
    };
    if key.is_empty() {
        return Err(crate::usage("no API key given"));
    }
    let path = credentials_path();
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    use std::io::Write;
    writeln!(f, "{key}")?;
    eprintln!("API key stored in {}", path.display());
    Ok(())
}

/// `islo logout`.
pub fn logout() -> anyhow::Result<()> {
    match std::fs::remove_file(credentials_path()) {
        Ok(()) => eprintln!("API key removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("no stored API key"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The endpoint configured by the environment, without starting anything.
pub fn endpoint() -> Endpoint {
    for var in ["ISLO_COMPUTE_URL", "ISLO_BASE_URL"] {
        if let Ok(u) = std::env::var(var)
            && !u.is_empty()
        {
            return Endpoint::Http(u);
        }
    }
    Endpoint::Unix(
        std::env::var_os("ISLO_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir().join("islod.sock")),
    )
}

/// A client for the configured server; the embedded one is started if needed.
pub async fn client() -> anyhow::Result<Client> {
    let ep = endpoint();
    if let Endpoint::Unix(sock) = &ep
        && std::os::unix::net::UnixStream::connect(sock).is_err()
    {
        start_embedded(sock)?;
    }
    Ok(Client::new(ep, api_key())?)
}

fn islod_binary() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("islod")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("islod"),
    }
}

/// The pid of the live islod holding the state directory `dir`, if there is one (islod writes
/// its pid into the lock it holds; a stale file names a process that is gone).
fn lock_holder(dir: &std::path::Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("islod.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "islod").then_some(pid)
}

/// Start `islod serve` detached (own session, output to `<state>/islod.log`) and wait for
/// its socket.
fn start_embedded(sock: &std::path::Path) -> anyhow::Result<()> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("islod.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut cmd = std::process::Command::new(islod_binary());
    cmd.arg("--state-dir")
        .arg(&dir)
        .arg("serve")
        .arg("--socket")
        .arg(sock);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; it detaches
    // the server from the terminal's session so Ctrl-C and hang-ups do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd
        .spawn()
        .context("starting islod (is it installed beside islo or on PATH?)")?;
    wait_serving(sock, &dir, child, &log_path)
}

/// Wait for `sock` to accept: served by `child`, or by another islod that won the race to
/// the state directory `dir` (then `child` exits at once).
fn wait_serving(
    sock: &std::path::Path,
    dir: &std::path::Path,
    mut child: std::process::Child,
    log_path: &std::path::Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut exited = None;
    while started.elapsed() < START_TIMEOUT
        || (lock_holder(dir).is_some() && started.elapsed() < HELD_TIMEOUT)
    {
        if std::os::unix::net::UnixStream::connect(sock).is_ok() {
            return Ok(());
        }
        if exited.is_none() {
            exited = child.try_wait().ok().flatten().map(|s| (s, Instant::now()));
        }
        if let Some((status, when)) = exited {
            // Another islod won the race to the state directory (it may not have written its
            // pid yet): wait for it to serve.
            if lock_holder(dir).is_some() || when.elapsed() < Duration::from_millis(500) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "islod exited ({status}) before serving:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!(
        "islod did not start within {}s; see {}",
        START_TIMEOUT.as_secs(),
        log_path.display()
    )
}
