//! Upstreams for gateway tests: local HTTP/HTTPS servers (`tests/fixtures/upstream.py`) with
//! test host names the gateway resolves through its `hosts` setting, and certificates made
//! here (a test CA the gateway trusts, or a self-signed one it must refuse).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// Test host names, all served by the upstream on loopback.
pub const HOSTS: &[&str] = &[
    "up.test",
    "other.test",
    "api.vendor.test",
    "pypi.test",
    "git.test",
    "api.anthropic.com",
];

pub struct Certs {
    pub dir: tempfile::TempDir,
    /// What the gateway is told to trust for upstreams.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn leaf_params() -> CertificateParams {
    let names: Vec<String> = HOSTS.iter().map(|s| (*s).to_string()).collect();
    CertificateParams::new(names).unwrap()
}

fn write(dir: &Path, ca: &str, cert: &str, key: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    std::fs::write(p("ca.pem"), ca).unwrap();
    std::fs::write(p("cert.pem"), cert).unwrap();
    std::fs::write(p("key.pem"), key).unwrap();
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

impl Certs {
    /// A CA and a leaf for [`HOSTS`] signed by it.
    pub fn signed() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params().signed_by(&key, &issuer).unwrap();
        let (ca, cert, key) = write(
            dir.path(),
            &ca_cert.pem(),
            &cert.pem(),
            &key.serialize_pem(),
        );
        Self { dir, ca, cert, key }
    }

    /// A leaf for [`HOSTS`] that signs itself: no one should trust it.
    pub fn self_signed() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params().self_signed(&key).unwrap();
        let (ca, cert, key) = write(dir.path(), "", &cert.pem(), &key.serialize_pem());
        Self { dir, ca, cert, key }
    }
}

/// The `gateway:` lines that resolve [`HOSTS`] to loopback and trust `certs`' CA.
pub fn gateway_config(certs: &Certs) -> String {
    let mut s = String::from("  hosts:\n");
    for h in HOSTS {
        s.push_str(&format!("    {h}: 127.0.0.1\n"));
    }
    s.push_str(&format!("  upstream_ca_files: [{}]\n", certs.ca.display()));
    s
}

/// A fixture script under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Spawn a fixture server and wait for its `ready` line; returns the ports it names.
///
/// Fixtures bind port 0 and print the ports the kernel gave them: choosing a "free" port here
/// and passing it down races with every other test (two calls once returned the same port).
pub fn spawn_ready(cmd: &mut Command) -> (Child, Vec<u16>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test-env.sh installs it)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"), "{cmd:?} did not start");
    let ports = words.map(|w| w.parse().unwrap()).collect();
    (child, ports)
}

/// What a fixture logged, one JSON object a line, oldest first.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Static content under `dir/www` (`make_repos.py`: a PyPI index, git repositories).
pub fn make_repos(dir: &Path) -> PathBuf {
    let content = dir.join("www");
    let made = Command::new("python3")
        .arg(fixture("make_repos.py"))
        .arg(&content)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    content
}

/// A running upstream.
pub struct Upstream {
    child: Child,
    pub http: u16,
    pub https: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Upstream {
    /// Serve HTTP and HTTPS (with `certs`) on `bind`, files from `root`.
    pub fn start(certs: &Certs, bind: &str, root: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut cmd = Command::new("python3");
        cmd.arg(fixture("upstream.py"))
            .args(["--bind", bind, "--http", "0", "--https", "0"])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .arg("--log")
            .arg(&log);
        if let Some(r) = root {
            cmd.arg("--root").arg(r);
        }
        let (child, ports) = spawn_ready(&mut cmd);
        let [http, https] = ports[..] else {
            panic!("upstream.py named ports {ports:?}")
        };
        Self {
            child,
            http,
            https,
            log,
            _dir: dir,
        }
    }

    /// Every request that arrived, oldest first.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        json_lines(&self.log)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
