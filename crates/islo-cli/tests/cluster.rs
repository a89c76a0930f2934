//! A cluster on one machine: a real three-member etcd on loopback and islod nodes, each an
//! installation of its own (state, socket, gateway subnet, node port), driven through the real
//! CLI: shared state, requests carried to the node that holds the sandbox over mutual TLS,
//! racing creates, cordon, a node killed, etcd members killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Env, Tmux, stderr, stdout};
use islo_testkit::etcd::EtcdCluster;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test-env.sh installs it)");
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
}

/// A certificate authority in `dir` and, for each name, a node certificate it signed
/// (`NAME.pem`, `NAME-key.pem`) for 127.0.0.1.
fn authority(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=islo-test-cluster"]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    for n in names {
        let (key, csr, pem) = (
            format!("{n}-key.pem"),
            format!("{n}.csr"),
            format!("{n}.pem"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=node"]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    }
}

struct Node {
    env: Env,
    /// The node listener's port, and the API's.
    port: u16,
    api: u16,
}

impl Node {
    fn islod(&self) -> Command {
        let mut c = Command::new(Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod"));
        c.env("ISLOD_CONFIG", self.env.dir.path().join("islod.yaml"))
            .env("ISLOD_STATE_DIR", self.env.state())
            .env("ISLO_AGENT_PATH", common::agent_path());
        c
    }

    fn nodes(&self) -> serde_json::Value {
        let o = self
            .islod()
            .args(["nodes", "list", "-o", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "islod nodes: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn kill_islod(&self) {
        let pid = self.env.islod_pid().expect("islod runs");
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The cluster section of node `name`'s islod.yaml.
fn cluster_yaml(etcd: &EtcdCluster, prefix: &str, certs: &Path, name: &str, port: u16) -> String {
    cluster_yaml_with(&etcd.endpoints, prefix, certs, name, port)
}

fn cluster_yaml_with(
    endpoints: &[String],
    prefix: &str,
    certs: &Path,
    name: &str,
    port: u16,
) -> String {
    let c = |f: &str| certs.join(f).display().to_string();
    format!(
        "cluster:\n  etcd: [{}]\n  node_name: {name}\n  advertise: https://127.0.0.1:{port}\n  \
         listen: 127.0.0.1:{port}\n  prefix: {prefix}\n  lease_ttl_secs: 3\n  \
         tls: {{ca: {}, cert: {}, key: {}}}\n",
        endpoints.join(", "),
        c("ca.pem"),
        c(&format!("{name}.pem")),
        c(&format!("{name}-key.pem")),
    )
}

fn node(etcd: &EtcdCluster, prefix: &str, certs: &Path, name: &str) -> Node {
    node_with(etcd, prefix, certs, name, "")
}

/// A node with `extra` lines in its `cluster:` section.
fn node_with(etcd: &EtcdCluster, prefix: &str, certs: &Path, name: &str, extra: &str) -> Node {
    let (port, api) = (free_port(), free_port());
    let yaml = format!(
        "listen: 127.0.0.1:{api}\n{}{extra}",
        cluster_yaml(etcd, prefix, certs, name, port)
    );
    Node {
        env: Env::with_config(&yaml),
        port,
        api,
    }
}

/// Run tests/sdk/cluster_sdk.py STEP NAME with the public Python SDK against node `n`'s API.
fn sdk(n: &Node, key: &str, step: &str, name: &str) {
    let cache = std::env::var("ISLO_TEST_CACHE").unwrap_or_else(|_| "/var/cache/islo-test".into());
    let python = Path::new(&cache).join("sdk-venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: scripts/client-tests.sh installs the Islo SDK there (scripts/test.sh runs it)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/cluster_sdk.py");
    let url = format!("http://127.0.0.1:{}", n.api);
    let o = Command::new(python)
        .arg(script)
        .args([step, name])
        .env("ISLO_BASE_URL", &url)
        .env("ISLO_COMPUTE_URL", &url)
        .env("ISLO_API_KEY", key)
        .env("ISLO_TEST_IMAGE", n.env.busybox())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "SDK {step} through {url}: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// Wait (`secs` at most) until `done` holds, else fail saying `what`.
fn eventually(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait (10 s at most) until directory `dir` is empty, else fail saying `what`.
fn emptied(dir: &Path, what: &str) {
    eventually(10, what, || std::fs::read_dir(dir).unwrap().count() == 0);
}

/// `cat /workspace/t` in a new sandbox `name` made from snapshot `snap` through node `n`
/// (on `node`, if given).
fn cat_from_snapshot(n: &Node, name: &str, snap: &str, node: Option<&str>) -> String {
    let mut args = vec!["use", name, "--snapshot", snap];
    if let Some(node) = node {
        args.extend(["--node", node]);
    }
    args.extend(["--", "cat", "/workspace/t"]);
    let o = n.env.islo(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn unique_prefix(test: &str) -> String {
    format!("/islo-test-{}-{test}/", std::process::id())
}

fn health(list: &serde_json::Value, name: &str) -> (String, u64) {
    let n = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"));
    (
        n["health"].as_str().unwrap().to_string(),
        n["sandboxes"].as_u64().unwrap(),
    )
}

#[test]
fn nodes_share_state_and_carry_requests_for_each_other() {
    let etcd = EtcdCluster::start(3);
    let certs = tempfile::tempdir().unwrap();
    authority(certs.path(), &["node-a", "node-b", "node-c"]);
    let prefix = unique_prefix("share");
    let a = node(&etcd, &prefix, certs.path(), "node-a");
    let b = node(&etcd, &prefix, certs.path(), "node-b");

    // Made through a; seen, used and written through b.
    let o = a.env.sh("box", "echo made > /tmp/mark; hostname");
    assert!(o.status.success(), "{}", stderr(&o));
    b.env.ok(&["ls"]); // b's islod starts
    let listed = b.env.ok(&["ls"]);
    assert!(listed.contains("box"), "{listed}");
    let o = b.env.islo(&["use", "box", "--", "cat", "/tmp/mark"]);
    assert_eq!(stdout(&o), "made\n", "{}", stderr(&o));
    let local = a.env.dir.path().join("up.txt");
    std::fs::write(&local, "from b\n").unwrap();
    b.env
        .ok(&["cp", local.to_str().unwrap(), "box:/tmp/up.txt"]);
    assert_eq!(
        a.env.ok(&["use", "box", "--", "cat", "/tmp/up.txt"]),
        "from b\n"
    );
    let logs = b.env.ok(&["logs", "box", "--type", "exec"]);
    assert!(
        logs.contains("cat /tmp/mark"),
        "the audit log, read through b: {logs}"
    );
    // The gateway's decisions about it, read through b.
    a.env.sh(
        "box",
        "wget -q -O /dev/null http://10.1.2.3/from-box || true",
    );
    std::thread::sleep(Duration::from_millis(300)); // a background writer records them
    let decisions = b.env.ok(&["gateway", "log", "box", "-o", "json"]);
    assert!(
        decisions.contains("from-box"),
        "the gateway log, read through b: {decisions}"
    );
    // An interactive session through b, detached, and attached again through a.
    let t = Tmux::start(&b.env, &["use", "box"], 100, 30);
    t.wait_for("detach with Ctrl-P Ctrl-Q");
    t.line("echo via-$((40+2)); stty size");
    t.wait_for("via-42");
    t.wait_for("30 100");
    t.resize(90, 20);
    t.line("stty size");
    t.wait_for("20 90");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    let t = Tmux::start(&a.env, &["use", "box"], 100, 30);
    t.wait_for("via-42");
    t.line("exit 4");
    t.wait_for("CLI-EXIT=4");
    // A port inside it, forwarded through b.
    let o = b.env.islo(&[
        "use",
        "box",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/www && echo served > /tmp/www/i && (httpd -p 8080 -h /tmp/www &)",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut pf, port) = common::port_forward(&b.env, "box", 8080, std::process::Stdio::null());
    let got = Command::new("curl")
        .args([
            "-fsS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/i"),
        ])
        .output()
        .unwrap();
    let _ = pf.kill();
    assert_eq!(stdout(&got), "served\n", "{}", stderr(&got));
    // SSH through b, with a certificate b signed, to the sandbox on a (one set of SSH
    // authorities for the cluster).
    let o = b.env.islo(&["ssh", "--setup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = b.env.islo(&["ssh", "box", "--", "cat", "/tmp/mark"]);
    assert_eq!(stdout(&o), "made\n", "ssh through node-b: {}", stderr(&o));
    // Its public share URL, reached through b.
    let v: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["share", "box", "8080", "-o", "json"])).unwrap();
    let url = v["url"].as_str().unwrap();
    let path = url.splitn(4, '/').nth(3).unwrap();
    let got = Command::new("curl")
        .args([
            "-fsS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{}/{path}i", b.api),
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&got),
        "served\n",
        "the share through node-b: {}",
        stderr(&got)
    );

    // A snapshot of it saved through b is saved on node-a, where its files are; sandboxes
    // made from it through b start there; it is removed through b.
    b.env.ok(&[
        "use",
        "box",
        "--",
        "sh",
        "-c",
        "echo snap > /workspace/mark",
    ]);
    b.env.ok(&["snapshot", "save", "box", "--name", "snap1"]);
    let o = b.env.islo(&[
        "use",
        "from-snap",
        "--snapshot",
        "snap1",
        "--",
        "cat",
        "/workspace/mark",
    ]);
    assert_eq!(stdout(&o), "snap\n", "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["status", "from-snap", "-o", "json"])).unwrap();
    assert_eq!(v["node"], "node-a", "{v}");
    b.env.ok(&["rm", "from-snap", "-f"]);
    b.env.ok(&["snapshot", "rm", "snap1", "-f"]);

    // Creates through one node spread over the nodes; an operator may name the node.
    for n in ["s1", "s2", "s3"] {
        assert!(a.env.sh(n, "true").status.success());
    }
    let on = |name: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&a.env.ok(&["status", name, "-o", "json"])).unwrap();
        v["node"].as_str().unwrap().to_string()
    };
    let placed: Vec<String> = ["box", "s1", "s2", "s3"].iter().map(|n| on(n)).collect();
    assert_eq!(
        placed.iter().filter(|n| *n == "node-b").count(),
        2,
        "{placed:?}"
    );
    let pin = |name: &str, node: &str| {
        a.env.islo(&[
            "use",
            name,
            "-i",
            &a.env.busybox(),
            "--node",
            node,
            "--",
            "true",
        ])
    };
    let o = pin("pinned", "node-a");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(on("pinned"), "node-a");
    let o = pin("nowhere", "node-z");
    assert!(
        !o.status.success() && stderr(&o).contains("node-z"),
        "{}",
        stderr(&o)
    );
    for n in ["s1", "s2", "s3", "pinned"] {
        a.env.ok(&["rm", n, "-f"]);
    }

    // Two racing creates of one name through two nodes: one sandbox, both commands run.
    let img = a.env.busybox();
    let racer = |n: &Node| {
        n.env
            .islo_cmd()
            .args(["use", "same", "-i", &img, "--", "true"])
            .spawn()
            .unwrap()
    };
    let (mut ra, mut rb) = (racer(&a), racer(&b));
    assert!(ra.wait().unwrap().success() && rb.wait().unwrap().success());
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&a.env.ok(&["ls", "-o", "json"])).unwrap();
    assert_eq!(
        all.iter().filter(|s| s["name"] == "same").count(),
        1,
        "{all:?}"
    );

    // Both registered; the list says where the sandboxes are.
    std::thread::sleep(Duration::from_millis(1500)); // a heartbeat publishes the counts
    let list = b.nodes();
    assert_eq!(health(&list, "node-a").0, "ready", "{list}");
    assert_eq!(health(&list, "node-b").0, "ready", "{list}");
    let total = health(&list, "node-a").1 + health(&list, "node-b").1;
    assert_eq!(total, 2, "{list}");

    // A cordoned node takes no new sandbox: creates through it land elsewhere, and naming
    // it is refused; uncordoned, it takes them again.
    let cordon = |verb: &str| {
        let o = b.islod().args(["nodes", verb, "node-b"]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let o = b
        .islod()
        .args(["nodes", "cordon", "node-typo"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("no node named node-typo"),
        "{}",
        stderr(&o)
    );
    cordon("cordon");
    assert_eq!(health(&a.nodes(), "node-b").0, "cordoned");
    assert!(b.env.sh("elsewhere", "true").status.success());
    assert_eq!(on("elsewhere"), "node-a");
    let o = pin("refused", "node-b");
    assert!(
        !o.status.success() && stderr(&o).contains("cordoned"),
        "{}",
        stderr(&o)
    );
    cordon("drain");
    assert_eq!(health(&a.nodes(), "node-b").0, "draining");
    assert!(b.env.sh("elsewhere-too", "true").status.success());
    assert_eq!(on("elsewhere-too"), "node-a");
    cordon("uncordon");
    let o = pin("accepted", "node-b");
    assert!(o.status.success(), "{}", stderr(&o));

    // The node port takes nobody without a certificate of the cluster's authority.
    let url = format!("https://127.0.0.1:{}/system", b.port);
    let bare = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "5",
            "-H",
            "x-islo-tenant-id: x",
            "-H",
            "x-islo-tenant-name: local",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        !bare.status.success() && bare.stdout.is_empty(),
        "{}",
        stdout(&bare)
    );
    let other = certs.path().join("other");
    authority(&other, &["node-b"]);
    let c = |f: &str| other.join(f).display().to_string();
    let forged = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "--cacert",
            &certs.path().join("ca.pem").display().to_string(),
        ])
        .args([
            "--cert",
            &c("node-b.pem"),
            "--key",
            &c("node-b-key.pem"),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        !forged.status.success() && forged.stdout.is_empty(),
        "{}",
        stdout(&forged)
    );

    // A third node joins the running cluster; the public SDK creates through it and uses the
    // sandbox through node-a.
    let closed = format!(
        "  snapshot_registry: http://127.0.0.1:{}/islo-test/nowhere\n",
        free_port()
    );
    let c = node_with(&etcd, &prefix, certs.path(), "node-c", &closed);
    let o = c
        .islod()
        .args(["keys", "create", "sdk", "--tenant", "sdk"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    c.env.ok(&["ls"]);
    a.env.ok(&["ls"]); // a serves TCP too
    sdk(&c, &key, "create", "by-sdk");
    std::thread::sleep(Duration::from_millis(1500)); // a heartbeat publishes the counts
    let list = a.nodes();
    assert_eq!(
        health(&list, "node-c"),
        ("ready".into(), 1),
        "placed on the empty node: {list}"
    );
    sdk(&a, &key, "use", "by-sdk");
    // node-c's snapshot registry does not answer: its snapshots stay on it, and say so.
    let o = c
        .env
        .islo(&["use", "on-c", "-i", &img, "--node", "node-c", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    a.env.ok(&["snapshot", "save", "on-c", "--name", "stays"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&a.env.ok(&["snapshot", "ls", "-o", "json"])).unwrap();
    let stays = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stays")
        .unwrap();
    assert_eq!(stays["status"], "ready", "{stays}");
    assert!(
        stays["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("kept on node node-c only"),
        "{stays}"
    );
    let o = a.env.islo(&[
        "use",
        "elsewhere-stays",
        "--snapshot",
        "stays",
        "--node",
        "node-a",
        "--",
        "true",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("snapshot stays is on node node-c"),
        "{}",
        stderr(&o)
    );
    assert!(!a.env.ok(&["ls"]).contains("elsewhere-stays"));
    a.env
        .ok(&["use", "from-stays", "--snapshot", "stays", "--", "true"]);
    let v: serde_json::Value =
        serde_json::from_str(&a.env.ok(&["status", "from-stays", "-o", "json"])).unwrap();
    assert_eq!(v["node"], "node-c", "{v}");
    for n in ["from-stays", "on-c"] {
        a.env.ok(&["rm", n, "-f"]);
    }
    a.env.ok(&["snapshot", "rm", "stays", "-f"]);

    // A node whose etcd does not answer says so, keeps trying, and does not serve meanwhile.
    let dead = EtcdCluster::unreachable_endpoint();
    let lonely = Env::with_config(&cluster_yaml_with(
        &[dead],
        &prefix,
        certs.path(),
        "node-b",
        free_port(),
    ));
    let mut waiting = Command::new(Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod"))
        .args(["serve"])
        .env("ISLOD_CONFIG", lonely.dir.path().join("islod.yaml"))
        .env("ISLOD_STATE_DIR", lonely.state())
        .env("ISLO_AGENT_PATH", common::agent_path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "it gave up instead of retrying"
    );
    assert!(
        !lonely.state().join("islod.sock").exists(),
        "it serves without its state"
    );
    let _ = waiting.kill();
    let out = waiting.wait_with_output().unwrap();
    assert!(
        stderr(&out).contains("etcd is not answering"),
        "{}",
        stderr(&out)
    );

    // A second node with a live node's name is refused.
    let twin = node(&etcd, &prefix, certs.path(), "node-a");
    let o = twin.islod().arg("serve").output().unwrap();
    assert!(!o.status.success(), "a second node-a served");
    assert!(
        stderr(&o).contains("already in the cluster"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_lost_node_and_a_lost_quorum() {
    let mut etcd = EtcdCluster::start(3);
    let certs = tempfile::tempdir().unwrap();
    authority(certs.path(), &["node-a", "node-b"]);
    let prefix = unique_prefix("loss");
    // Snapshots travel through the test registry.
    let repo = format!("islo-test/cluster-{}", std::process::id());
    let registry = format!(
        "  snapshot_registry: http://{}/{repo}\n",
        islo_testkit::registry::require()
    );
    let a = node_with(&etcd, &prefix, certs.path(), "node-a", &registry);
    let b = node_with(&etcd, &prefix, certs.path(), "node-b", &registry);
    assert!(
        a.env
            .sh("on-a", "echo travelled > /workspace/t")
            .status
            .success()
    );
    assert!(b.env.sh("on-b", "echo kept > /tmp/k").status.success());

    // A snapshot saved on node-a starts a sandbox on node-b: pulled from the registry.
    b.env.ok(&["snapshot", "save", "on-a", "--name", "trav"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["snapshot", "ls", "-o", "json"])).unwrap();
    let snap = &snaps.as_array().unwrap()[0];
    assert!(snap["status_reason"].is_null(), "not copied: {snap}");
    let manifest = format!(
        "http://{}/v2/{repo}/manifests/{}",
        islo_testkit::registry::addr(),
        snap["id"].as_str().unwrap()
    );
    let in_registry = || {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg("Accept: application/vnd.oci.image.manifest.v1+json")
            .arg(&manifest)
            .output()
            .unwrap();
        stdout(&o)
    };
    assert_eq!(in_registry(), "200");
    assert_eq!(
        cat_from_snapshot(&b, "trav-1", "trav", Some("node-b")),
        "travelled\n"
    );
    // A snapshot whose copy the registry lost: a create on another node fails saying so, and
    // leaves neither a sandbox nor anything pulled.
    b.env
        .ok(&["snapshot", "save", "on-a", "--name", "lost-copy"]);
    let lost: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["snapshot", "ls", "-o", "json"])).unwrap();
    let lost_id = lost
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "lost-copy")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lost_url = format!(
        "http://{}/v2/{repo}/manifests/{lost_id}",
        islo_testkit::registry::addr()
    );
    let head = Command::new("curl")
        .args([
            "-fsSI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(&lost_url)
        .output()
        .unwrap();
    let digest = stdout(&head)
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|d| d.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{}", stdout(&head)));
    let deleted = Command::new("curl")
        .args(["-fsS", "-X", "DELETE"])
        .arg(lost_url.replace(&lost_id, &digest))
        .status()
        .unwrap();
    assert!(deleted.success());
    let o = b.env.islo(&[
        "use",
        "lost-1",
        "--snapshot",
        "lost-copy",
        "--node",
        "node-b",
        "--",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("copy is gone from registry") && stderr(&o).contains("node node-a"),
        "{}",
        stderr(&o)
    );
    assert!(!b.env.ok(&["ls"]).contains("lost-1"));
    b.env.ok(&["snapshot", "rm", "lost-copy", "-f"]);
    let pulled = b.env.state().join("snapshots/held");
    assert_eq!(std::fs::read_dir(&pulled).unwrap().count(), 1);
    // Exported through b (from node-a's files), imported through b: it travels back to a.
    let archive = b.env.dir.path().join("trav.tar");
    let to = format!("oci-archive:{}", archive.display());
    b.env.ok(&["snapshot", "export", "trav", "--to", &to]);
    b.env.ok(&["snapshot", "import", &to, "--name", "trav-imp"]);
    assert_eq!(
        cat_from_snapshot(&a, "imp-a", "trav-imp", Some("node-a")),
        "travelled\n"
    );
    a.env.ok(&["rm", "imp-a", "-f"]);
    a.env.ok(&["snapshot", "rm", "trav-imp", "-f"]);
    // A memory snapshot too: a fork on node-b runs on from where node-a's processes were.
    let o = a.env.sh(
        "on-a",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(500));
    b.env
        .ok(&["snapshot", "save", "on-a", "--name", "live", "--memory"]);
    let count = |name: &str| -> u64 {
        let o = b.env.islo(&["use", name, "--", "cat", "/tmp/count"]);
        stdout(&o)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}", stderr(&o)))
    };
    let o = b.env.islo(&[
        "use",
        "fork",
        "--snapshot",
        "live",
        "--node",
        "node-b",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = count("fork");
    std::thread::sleep(Duration::from_millis(600));
    assert!(count("fork") > before, "the fork's processes do not run on");
    b.env.ok(&["rm", "fork", "-f"]);
    b.env.ok(&["snapshot", "rm", "live", "-f"]);

    // One etcd member of three lost: nothing changes for users.
    etcd.kill(2);
    let o = b.env.sh("after-member", "true");
    assert!(o.status.success(), "{}", stderr(&o));

    // node-a killed: past its lease, requests for its sandbox answer 503 naming it, at once.
    a.kill_islod();
    std::thread::sleep(Duration::from_secs(5));
    let started = Instant::now();
    let o = b.env.islo(&["use", "on-a", "--", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("node node-a"), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(10), "it hung");
    assert_eq!(health(&b.nodes(), "node-a").0, "lost");
    let st: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["status", "on-a", "-o", "json"])).unwrap();
    assert_eq!(st["status"], "failed", "{st}");
    assert!(
        st["status_reason"].as_str().unwrap().contains("node lost"),
        "{st}"
    );
    assert_eq!(st["node"], "node-a", "{st}");
    let text = b.env.ok(&["status", "on-a"]);
    assert!(
        text.contains("Node: node-a") && text.contains("node lost"),
        "{text}"
    );
    assert_eq!(b.env.ok(&["use", "on-b", "--", "cat", "/tmp/k"]), "kept\n");
    // Its snapshot still starts sandboxes (from the registry), and is removed without it:
    // from the registry, and from what node-b pulled.
    assert_eq!(cat_from_snapshot(&b, "trav-2", "trav", None), "travelled\n");
    b.env.ok(&["rm", "trav-1", "-f"]);
    b.env.ok(&["rm", "trav-2", "-f"]);
    b.env.ok(&["snapshot", "rm", "trav", "-f"]);
    assert_eq!(in_registry(), "404");
    emptied(&pulled, "node-b kept what it pulled");
    // Back, it serves its sandboxes again.
    a.env.ok(&["ls"]);
    b.env.ok(&["use", "on-a", "--", "true"]);
    assert_eq!(health(&b.nodes(), "node-a").0, "ready");
    // What it held of the snapshot removed while it was away is gone too.
    emptied(
        &a.env.state().join("snapshots/held"),
        "node-a kept a removed snapshot's files",
    );
    let st: serde_json::Value =
        serde_json::from_str(&b.env.ok(&["status", "on-a", "-o", "json"])).unwrap();
    assert_eq!(
        st["status"], "running",
        "set right by node-a at its return: {st}"
    );

    // node-a stalled past its lease while its sandboxes keep running (SIGSTOP): the others
    // mark its sandbox lost; resumed, node-a registers again and sets it right.
    let pid = a.env.islod_pid().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = || -> String {
        let v: serde_json::Value =
            serde_json::from_str(&b.env.ok(&["status", "on-a", "-o", "json"])).unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    eventually(15, "a stalled node's sandbox was not marked lost", || {
        status() == "failed"
    });
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(20, "node-a did not set its sandbox right", || {
        status() == "running"
    });
    b.env.ok(&["use", "on-a", "--", "true"]);

    // Quorum lost: writes fail with a clear 503; running sandboxes keep running and answer.
    etcd.kill(1);
    let o = b.env.sh("no-quorum", "true");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("quorum"), "{}", stderr(&o));
    assert_eq!(b.env.ok(&["use", "on-b", "--", "cat", "/tmp/k"]), "kept\n");
    let started = Instant::now();
    assert_eq!(b.env.ok(&["use", "on-b", "--", "cat", "/tmp/k"]), "kept\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "reads wait for etcd"
    );
    etcd.restart(1);
    etcd.restart(2);
    etcd.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.env.sh("quorum-back", "true").status.success() {
        assert!(
            Instant::now() < deadline,
            "writes did not come back with the quorum"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
