//! SSH with certificates through Debian's real OpenSSH client, scp, sftp and rsync: `islo ssh
//! --setup` edits only its own block, plain `ssh NAME.islo` runs commands (exit codes kept,
//! recorded in the audit log), files move every way, `ssh -L` forwards, and certificates from
//! another CA, expired ones and another tenant's are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Env, stderr, stdout};

const PY: &str = "python:3.12-slim";
const USER_CONFIG: &str = "Host example\n    User someone\n    Port 2222\n";

/// A user: a home directory with an existing ssh config, and the islo environment.
struct User<'a> {
    env: &'a Env,
    home: PathBuf,
    api_key: Option<String>,
}

impl<'a> User<'a> {
    fn new(env: &'a Env, name: &str, api_key: Option<String>) -> Self {
        let home = env.dir.path().join(name);
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/config"), USER_CONFIG).unwrap();
        Self { env, home, api_key }
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.envs(self.env.env_pairs())
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME");
        match &self.api_key {
            Some(k) => cmd.env("ISLO_API_KEY", k),
            None => cmd.env_remove("ISLO_API_KEY"),
        };
    }

    fn islo(&self, args: &[&str]) -> Output {
        let mut cmd = self.env.islo_cmd();
        self.apply(&mut cmd);
        cmd.args(args).output().unwrap()
    }

    fn config(&self) -> PathBuf {
        self.home.join(".ssh/config")
    }

    /// An OpenSSH tool with this user's config (OpenSSH reads the passwd home, not $HOME).
    fn tool(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        self.apply(&mut cmd);
        cmd.arg("-F").arg(self.config());
        cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]);
        cmd.args(args);
        cmd
    }

    fn ssh(&self, args: &[&str]) -> Output {
        self.tool("ssh", args).output().unwrap()
    }

    fn key(&self) -> PathBuf {
        self.home.join(".config/islo/ssh/id_ed25519")
    }
}

fn curl_sign(env: &Env, public_key: &Path, ttl: u64) -> String {
    let body = serde_json::json!({
        "public_key": std::fs::read_to_string(public_key).unwrap(),
        "ttl_seconds": ttl,
    });
    let o = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(env.state().join("islod.sock"))
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
        ])
        .arg("http://islod/ssh/certificates")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["certificate"].as_str().unwrap().to_string()
}

#[test]
fn setup_then_openssh_tools_work_and_foreign_certificates_are_refused() {
    let env = Env::new();
    let o = env.islo(&["use", "sh1", "-i", PY, "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let me = User::new(&env, "me", None);

    // Setup twice: one block, first; the user's own config untouched; remove restores it.
    for _ in 0..2 {
        let o = me.islo(&["ssh", "--setup"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let cfg = std::fs::read_to_string(me.config()).unwrap();
    assert_eq!(cfg.matches("Host *.islo").count(), 1, "{cfg}");
    assert!(
        cfg.starts_with("# >>> islo") && cfg.ends_with(USER_CONFIG),
        "{cfg}"
    );
    assert!(!cfg.contains("StrictHostKeyChecking no"));
    let kh = std::fs::read_to_string(me.home.join(".config/islo/ssh/known_hosts")).unwrap();
    assert!(
        kh.starts_with("@cert-authority *.islo ssh-ed25519 "),
        "{kh}"
    );
    assert!(me.islo(&["ssh", "--remove"]).status.success());
    assert_eq!(std::fs::read_to_string(me.config()).unwrap(), USER_CONFIG);
    assert!(me.islo(&["ssh", "--setup"]).status.success());

    // Commands, exit codes, the audit log.
    let o = me.ssh(&["sh1.islo", "echo hello from $(whoami); exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from islo\n");
    let o = me.ssh(&["root@sh1.islo", "id -u"]);
    assert_eq!(stdout(&o), "0\n", "{}", stderr(&o));
    let logs = env.ok(&["logs", "sh1", "--type", "exec", "-o", "json"]);
    assert!(logs.contains("echo hello from $(whoami)"), "{logs}");
    let o = me.ssh(&["-tt", "sh1.islo", "tty; echo $TERM"]);
    assert!(
        stdout(&o).starts_with("/dev/pts/"),
        "a terminal: {}",
        stdout(&o)
    );
    let o = me.islo(&["ssh", "sh1", "--", "echo", "shortcut"]);
    assert_eq!(stdout(&o), "shortcut\n", "{}", stderr(&o));
    // The exit-code rule every transport shares: 128+N for a signal, on pipes and on a
    // terminal; 125 for a command that could not start (here: its user is gone).
    let o = me.ssh(&["sh1.islo", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let o = me.ssh(&["-tt", "sh1.islo", "kill -KILL $$"]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let hide = "cp /etc/passwd /etc/passwd.keep && grep -v '^islo:' /etc/passwd.keep > /etc/passwd";
    assert!(me.ssh(&["root@sh1.islo", hide]).status.success());
    let o = me.ssh(&["sh1.islo", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown user"), "{}", stderr(&o));
    let back = "mv /etc/passwd.keep /etc/passwd";
    assert!(me.ssh(&["root@sh1.islo", back]).status.success());

    // scp both ways, sftp, rsync.
    let local = env.dir.path().join("blob");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let st = me
        .tool("scp", &[local.to_str().unwrap(), "sh1.islo:/workspace/"])
        .status()
        .unwrap();
    assert!(st.success());
    let back = env.dir.path().join("blob.back");
    let st = me
        .tool("scp", &["sh1.islo:/workspace/blob", back.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let mut sftp = me
        .tool("sftp", &["-b", "-", "sh1.islo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let got = env.dir.path().join("blob.sftp");
    use std::io::Write;
    writeln!(
        sftp.stdin.take().unwrap(),
        "mkdir /workspace/viasftp\nget /workspace/blob {}",
        got.display()
    )
    .unwrap();
    assert!(sftp.wait().unwrap().success());
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let tree = env.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/f"), "synced\n").unwrap();
    let rsh = format!("ssh -F {} -o BatchMode=yes", me.config().display());
    let mut rsync = Command::new("rsync");
    me.apply(&mut rsync);
    let st = rsync
        .args([
            "-a",
            "-e",
            &rsh,
            &format!("{}/", tree.display()),
            "sh1.islo:/workspace/tree/",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        stdout(&me.ssh(&[
            "sh1.islo",
            "cat /workspace/tree/sub/f; ls -d /workspace/viasftp"
        ])),
        "synced\n/workspace/viasftp\n"
    );

    // ssh -L to a server on the sandbox's loopback.
    let bg = "nohup python3 -m http.server 8000 --bind 127.0.0.1 -d /workspace >/dev/null 2>&1 &";
    assert!(me.ssh(&["sh1.islo", bg]).status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut fwd = me
        .tool(
            "ssh",
            &[
                "-N",
                "-L",
                &format!("127.0.0.1:{port}:127.0.0.1:8000"),
                "sh1.islo",
            ],
        )
        .spawn()
        .unwrap();
    let mut page = String::new();
    for _ in 0..100 {
        let o = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/tree/sub/f")])
            .output()
            .unwrap();
        page = stdout(&o);
        if page == "synced\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    fwd.kill().unwrap();
    let _ = fwd.wait();
    assert_eq!(page, "synced\n");

    // A certificate from another CA.
    let dir = env.dir.path().join("rogue");
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = |args: &[&str]| {
        assert!(
            Command::new("ssh-keygen")
                .args(args)
                .output()
                .unwrap()
                .status
                .success()
        )
    };
    let ca = dir.join("ca");
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", ca.to_str().unwrap()]);
    let cert = me.key().with_file_name("id_ed25519-cert.pub");
    let good = std::fs::read_to_string(&cert).unwrap();
    std::fs::copy(me.key().with_extension("pub"), dir.join("k.pub")).unwrap();
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "rogue",
        "-n",
        "islo,root",
        "-V",
        "+1h",
        dir.join("k.pub").to_str().unwrap(),
    ]);
    std::fs::copy(dir.join("k-cert.pub"), &cert).unwrap();
    let o = me.ssh(&["sh1.islo", "true"]);
    assert_eq!(
        o.status.code(),
        Some(255),
        "a foreign CA's certificate must be refused"
    );
    // An expired one from islod itself.
    std::fs::write(
        &cert,
        format!("{}\n", curl_sign(&env, &me.key().with_extension("pub"), 1)),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = me.ssh(&["sh1.islo", "true"]);
    assert_eq!(
        o.status.code(),
        Some(255),
        "an expired certificate must be refused"
    );
    std::fs::write(&cert, good).unwrap();
    assert!(me.ssh(&["sh1.islo", "true"]).status.success());

    // Another tenant: its own proxy cannot see the sandbox, and its certificate is refused
    // even when carried to it by this tenant's connection.
    let islod = Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod");
    let key = Command::new(islod)
        .arg("--state-dir")
        .arg(env.state())
        .args(["keys", "create", "them", "--tenant", "other"])
        .output()
        .unwrap();
    let key = stdout(&key).trim().to_string();
    let them = User::new(&env, "them", Some(key));
    assert!(them.islo(&["ssh", "--setup"]).status.success());
    let o = them.ssh(&["sh1.islo", "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    let exe = env!("CARGO_BIN_EXE_islo");
    let known = me.home.join(".config/islo/ssh/known_hosts");
    let raw_ssh = |key: &Path| {
        let mut cmd = Command::new("ssh");
        me.apply(&mut cmd);
        cmd.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args([
            "-l",
            "islo",
            "-o",
            &format!("ProxyCommand={exe} ssh proxy %h %p"),
        ])
        .args(["-o", &format!("UserKnownHostsFile={}", known.display())])
        .args(["-o", &format!("IdentityFile={}", key.display())])
        .args(["-o", &format!("CertificateFile={}-cert.pub", key.display())])
        .args(["sh1.islo", "true"])
        .output()
        .unwrap()
    };
    assert!(
        raw_ssh(&me.key()).status.success(),
        "the control: my own certificate works"
    );
    let o = raw_ssh(&them.key());
    assert_eq!(
        o.status.code(),
        Some(255),
        "another tenant's certificate must be refused"
    );
}

/// `sftp -b -` with `script` on stdin: (success, stdout).
fn sftp_batch(me: &User, target: &str, script: &str) -> (bool, String) {
    let mut c = me
        .tool("sftp", &["-b", "-", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn sftp_and_scp_work_in_any_image_and_stay_inside_the_sandbox() {
    let env = Env::new();
    // An image with nothing but one static program: no sftp-server, no shell.
    let scratch = format!("{}/islo-test/scratch:latest", env.registry);
    let o = env.islo(&["use", "bare", "-i", &scratch, "--", "/busybox", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let me = User::new(&env, "me", None);
    assert!(me.islo(&["ssh", "--setup"]).status.success());

    let local = env.dir.path().join("up.bin");
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let st = me
        .tool("scp", &[local.to_str().unwrap(), "bare.islo:/tmp/"])
        .status()
        .unwrap();
    assert!(st.success(), "scp up to a scratch image");
    let back = env.dir.path().join("down.bin");
    let st = me
        .tool("scp", &["bare.islo:/tmp/up.bin", back.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "scp down");
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // New files belong to the SSH user, as seen inside.
    let o = env.islo(&[
        "use",
        "bare",
        "--",
        "/busybox",
        "stat",
        "-c",
        "%u:%g %s",
        "/tmp/up.bin",
    ]);
    assert_eq!(stdout(&o), "1000:1000 1500000\n", "{}", stderr(&o));

    let (ok, out) = sftp_batch(
        &me,
        "bare.islo",
        "mkdir /tmp/d\nrename /tmp/up.bin /tmp/d/moved\nls -l /tmp/d\nchmod 600 /tmp/d/moved\nrm /tmp/d/moved\nrmdir /tmp/d\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("moved"), "{out}");
    let (ok, out) = sftp_batch(
        &me,
        "root@bare.islo",
        &format!("put {} /root-owned\n", local.display()),
    );
    assert!(ok, "{out}");
    let o = env.islo(&[
        "use",
        "bare",
        "--",
        "/busybox",
        "stat",
        "-c",
        "%u",
        "/root-owned",
    ]);
    assert_eq!(stdout(&o), "0\n", "as root, root's");

    // Paths and symlinks resolve inside the sandbox, never on the host.
    let secret = env.dir.path().join("host-secret");
    std::fs::write(&secret, "host only").unwrap();
    let link = format!("/busybox ln -s {} /tmp/escape", secret.display());
    assert!(
        env.islo(&["use", "bare", "--", "/busybox", "sh", "-c", &link])
            .status
            .success()
    );
    let got = env.dir.path().join("got");
    for path in [
        "/tmp/escape".to_string(),
        format!("/../../../..{}", secret.display()),
    ] {
        let (ok, out) = sftp_batch(&me, "bare.islo", &format!("get {path} {}\n", got.display()));
        assert!(!ok && !got.exists(), "{path}: {out}");
    }
    let (ok, out) = sftp_batch(
        &me,
        "bare.islo",
        &format!("put {} /tmp/escape\n", local.display()),
    );
    assert!(
        !ok,
        "a write through a link leading nowhere inside is refused: {out}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only");
}
