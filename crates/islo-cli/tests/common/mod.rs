//! A throw-away islo installation per test: its own state dir, its own embedded islod (started
//! by the CLI itself), the loopback test registry as the Docker Hub mirror, and the static
//! agent. Dropping it removes every sandbox it made and stops its islod.
//! These tests need root and the test registry (`scripts/test-env.sh`); without them they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub registry: String,
    extra: Vec<(String, String)>,
}

pub use islo_testkit::agent_path;

pub mod gateway;
pub mod upstream;

/// A /16 no other live installation of this test process uses (and not the default one),
/// nor one the host already routes (an installation a killed test left behind).
fn unique_subnet() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let routes = std::process::Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let second = 64 + (std::process::id() * 7 + n) % 128;
        let taken = routes
            .lines()
            .any(|l| l.starts_with(&format!("10.{second}.")));
        if !taken || n > 1000 {
            return format!("10.{second}.0.0/16");
        }
    }
}

impl Env {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// An installation whose islod.yaml gets `extra` appended.
    pub fn with_config(extra: &str) -> Self {
        Self::with_gateway(extra, "")
    }

    /// An installation whose islod.yaml gets `extra` appended and `gateway` (indented YAML
    /// lines) in its `gateway:` section, which always has a subnet of its own so that
    /// installations of parallel tests do not share sandbox addresses.
    pub fn with_gateway(extra: &str, gateway: &str) -> Self {
        assert!(
            rustix::process::geteuid().is_root(),
            "end-to-end tests need root (CI runs as root)"
        );
        let registry = islo_testkit::registry::require();
        let islod = Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod");
        assert!(
            islod.is_file(),
            "{} missing: run `cargo build --workspace --bins` first",
            islod.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("islo-e2e")
            .tempdir_in("/tmp")
            .unwrap();
        let cfg = format!(
            "registry_mirrors:\n  docker.io: http://{registry}\n{extra}\ngateway:\n  subnet: {}\n{gateway}",
            unique_subnet()
        );
        std::fs::write(dir.path().join("islod.yaml"), cfg).unwrap();
        Self {
            dir,
            registry,
            extra: vec![],
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Add an environment variable to every command.
    pub fn set(&mut self, k: &str, v: &str) {
        self.extra.push((k.into(), v.into()));
    }

    pub fn busybox(&self) -> String {
        format!("{}/islo-test/busybox:latest", self.registry)
    }

    /// Debian with python3, pip, git, curl, sftp-server and rsync.
    pub fn debian(&self) -> String {
        format!("{}/islo-test/debian-python:bookworm", self.registry)
    }

    pub fn islo_cmd(&self) -> Command {
        self.islo_cmd_program(env!("CARGO_BIN_EXE_islo"))
    }

    /// `program` with this installation's environment (e.g. a terminal wrapper around islo).
    pub fn islo_cmd_program(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_remove("ISLO_BASE_URL")
            .env_remove("ISLO_COMPUTE_URL")
            .env_remove("ISLO_API_KEY")
            .env("HOME", self.dir.path())
            .env("ISLO_STATE_DIR", self.state())
            .env("ISLOD_CONFIG", self.dir.path().join("islod.yaml"))
            .env("ISLO_AGENT_PATH", agent_path())
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    /// Write `data` to `path` inside `sandbox` (through `islo use … cat`).
    pub fn put_file(&self, sandbox: &str, path: &str, data: &[u8]) {
        let mut put = self
            .islo_cmd()
            .args(["use", sandbox, "--", "sh", "-c", &format!("cat > {path}")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut put.stdin.take().unwrap(), data).unwrap();
        assert!(put.wait().unwrap().success(), "writing {path} in {sandbox}");
    }

    /// The environment every islo command of this installation gets.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("HOME".to_string(), self.dir.path().display().to_string()),
            (
                "ISLO_STATE_DIR".to_string(),
                self.state().display().to_string(),
            ),
            (
                "ISLOD_CONFIG".to_string(),
                self.dir.path().join("islod.yaml").display().to_string(),
            ),
            (
                "ISLO_AGENT_PATH".to_string(),
                agent_path().display().to_string(),
            ),
        ];
        v.extend(self.extra.iter().cloned());
        v
    }

    pub fn islo(&self, args: &[&str]) -> Output {
        self.islo_cmd().args(args).output().unwrap()
    }

    /// Run and require success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.islo(args);
        assert!(
            o.status.success(),
            "islo {args:?} failed ({:?}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `islo use NAME -i busybox -- sh -c SCRIPT`.
    pub fn sh(&self, name: &str, script: &str) -> Output {
        self.islo(&["use", name, "-i", &self.busybox(), "--", "sh", "-c", script])
    }

    /// As root in `sandbox` (`--run-as-user root`): `sh -c SCRIPT`.
    pub fn root_sh(&self, sandbox: &str, script: &str) -> Output {
        self.islo(&[
            "use",
            sandbox,
            "--run-as-user",
            "root",
            "--",
            "sh",
            "-c",
            script,
        ])
    }

    pub fn islod_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.state().join("islod.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stop the embedded islod (SIGTERM) and wait for it to go.
    pub fn stop_islod(&self) {
        let Some(pid) = self.islod_pid() else { return };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Id of a sandbox by name.
    pub fn id_of(&self, name: &str) -> String {
        let out = self.ok(&["status", name, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.islod_pid().is_some() {
            let out = self.islo(&["ls", "-o", "json"]);
            if let Ok(items) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
                for s in items {
                    if let Some(n) = s["name"].as_str() {
                        let _ = self.islo(&["rm", n, "-f"]);
                    }
                }
            }
        }
        self.stop_islod();
        // Sandboxes no tenant lists (a pool's, `warm_pool`) go when an islod keeping no pool
        // starts.
        let left = std::fs::read_dir(self.state().join("sandboxes"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if left {
            let _ = self
                .islo_cmd()
                .env("ISLOD_WARM_POOL", "0")
                .arg("ls")
                .output();
            self.stop_islod();
        }
    }
}

/// The host pid of sandbox `id`'s agent (its PID 1), found by its cgroup.
pub fn agent_pid(id: &str) -> i32 {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cmd.starts_with(b"/.islo/islo-agent") && cg.contains(id) {
            return pid;
        }
    }
    panic!("no agent process for {id}");
}

/// `islo pf SANDBOX 0:REMOTE` running (its stderr as given), and the local port it printed.
pub fn port_forward(
    env: &Env,
    sandbox: &str,
    remote: u16,
    stderr: std::process::Stdio,
) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = env
        .islo_cmd()
        .args(["pf", sandbox, &format!("0:{remote}")])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    (child, port)
}

/// Wait until something in `sandbox` accepts connections on its loopback `port` (at most
/// 30 s, for a server slow to start, as Python under gVisor on a busy host is).
pub fn wait_listening(env: &Env, sandbox: &str, port: u16) {
    let probe = format!(
        "import socket,time\nfor _ in range(600):\n  try:\n    socket.create_connection(('127.0.0.1',{port})).close(); break\n  except OSError: time.sleep(0.05)\nelse:\n  raise SystemExit('nothing listens on port {port}')"
    );
    env.ok(&["use", sandbox, "--", "python3", "-c", &probe]);
}

/// Nothing on the host refers to sandbox `id` any more: no mount, cgroup, process or file.
pub fn assert_no_trace(env: &Env, id: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(id), "mounts of {id} left behind");
    for ctrl in ["memory", "pids", "cpu", "freezer", "devices"] {
        let p = PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/islo/{id}"));
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
    // The sandbox's PID 1 is reparented to the host's init, which reaps it when it gets to
    // it: an exited (zombie) process holds nothing, a live one is a leak.
    let live = || -> Vec<String> {
        let mut v = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cg = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            if cg.contains(id) && !zombie {
                v.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        v
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !live().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        live().is_empty(),
        "processes {:?} of {id} left behind",
        live()
    );
    assert!(
        !env.state().join("sandboxes").join(id).exists(),
        "files of {id} left behind"
    );
    // A removed sandbox's directory is deleted in the background, from islod's trash.
    let trashed = || {
        std::fs::read_dir(env.state().join("trash"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(id))
    };
    while trashed() && std::time::Instant::now() < deadline + Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!trashed(), "files of {id} left in the trash");
    assert!(
        !Path::new("/run/netns").join(format!("islo-{id}")).exists(),
        "network namespace of {id} left behind"
    );
    let claims = std::fs::read_dir("/var/lib/islo-ids")
        .into_iter()
        .flatten()
        .flatten();
    for c in claims {
        let text = std::fs::read_to_string(c.path()).unwrap_or_default();
        assert!(
            !text.contains(id),
            "id range claim {} of {id} left behind",
            c.path().display()
        );
    }
    let losetup = Command::new("losetup").arg("-a").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&losetup.stdout).contains(id),
        "loop device of {id} left behind"
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// islo running in a real terminal (tmux), driven by keystrokes and read off the screen.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Run `islo ARGS` in a new `cols`x`rows` terminal; when it exits the pane shows
    /// `CLI-EXIT=<code>`.
    pub fn start(env: &Env, args: &[&str], cols: u16, rows: u16) -> Self {
        let socket = env.dir.path().join(format!(
            "tmux-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let vars: Vec<String> = env
            .env_pairs()
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let argv: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        let cmd = format!(
            "stty -g > {}/stty-before; env {} {} {}; echo CLI-EXIT=$?; stty -g > {}/stty-after; sleep 600",
            env.dir.path().display(),
            vars.join(" "),
            env!("CARGO_BIN_EXE_islo"),
            argv.join(" "),
            env.dir.path().display()
        );
        let ok = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "new-session",
                "-d",
                "-x",
                &cols.to_string(),
                "-y",
                &rows.to_string(),
                &cmd,
            ])
            .status()
            .expect("tmux must be installed (scripts/test-env.sh)");
        assert!(ok.success());
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Type text (sent literally) followed by Enter.
    pub fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }

    /// Send tmux key names (`C-c`, `C-p`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        self.tmux(&args);
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// The screen and its scrollback.
    pub fn screen(&self) -> String {
        stdout(&self.tmux(&["capture-pane", "-p", "-J", "-S", "-500"]))
    }

    /// Wait until the screen shows `text` `times` times; returns the screen.
    #[track_caller]
    pub fn wait_for_n(&self, text: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.matches(text).count() >= times {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} x{times}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_n(text, 1)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
