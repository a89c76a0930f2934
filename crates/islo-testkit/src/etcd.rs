//! A real etcd cluster on loopback (Debian's `etcd-server`), for the cluster tests: members on
//! free ports, data in a temporary directory, killed when dropped. Fails loudly when etcd is
//! not installed (`scripts/test-env.sh` installs it).

#![allow(clippy::expect_used)] // test support: a failure to start etcd fails the test, loudly

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running etcd cluster.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Option<Child>>,
    /// Client URLs, one per member.
    pub endpoints: Vec<String>,
    args: Vec<Vec<String>>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("its address").port()
}

impl EtcdCluster {
    /// Start `n` members and wait until the cluster answers.
    pub fn start(n: usize) -> Self {
        let etcd = Path::new("/usr/bin/etcd");
        assert!(
            etcd.is_file(),
            "etcd is missing: install Debian's etcd-server (scripts/test-env.sh does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("islo-etcd")
            .tempdir_in("/tmp")
            .expect("a directory for etcd");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let token = format!("islo-test-{}", std::process::id());
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut c = Self {
            endpoints: ports
                .iter()
                .map(|(client, _)| format!("http://127.0.0.1:{client}"))
                .collect(),
            members: Vec::new(),
            args: Vec::new(),
            dir,
        };
        for (i, (client, peer)) in ports.iter().enumerate() {
            let args = vec![
                format!("--name=m{i}"),
                format!(
                    "--data-dir={}",
                    c.dir.path().join(format!("m{i}")).display()
                ),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={}", initial.join(",")),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".into(),
                "--log-level=error".into(),
            ];
            c.args.push(args);
            let child = c.spawn(i);
            c.members.push(Some(child));
        }
        c.wait_ready(Duration::from_secs(30));
        c
    }

    fn spawn(&self, i: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("m{i}.log")))
            .expect("etcd's log file");
        Command::new("/usr/bin/etcd")
            .args(&self.args[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd")
    }

    /// Wait until a write through the first live member succeeds.
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let live = self.members.iter().position(Option::is_some);
            let ok = live.is_some_and(|i| {
                Command::new("/usr/bin/etcdctl")
                    .args(["--endpoints", &self.endpoints[i], "--command-timeout=2s"])
                    .args(["put", "/islo-test/ready", "1"])
                    .env("ETCDCTL_API", "3")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready; logs in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A client URL where no etcd answers (a port nothing listens on).
    pub fn unreachable_endpoint() -> String {
        format!("http://127.0.0.1:{}", free_port())
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again (after [`kill`](Self::kill)), on its data.
    pub fn restart(&mut self, i: usize) {
        if self.members[i].is_none() {
            self.members[i] = Some(self.spawn(i));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
