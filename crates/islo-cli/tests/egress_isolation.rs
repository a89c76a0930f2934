//! The gateway cannot be bypassed, refuses bad upstreams, carries real tools, and leaves
//! nothing behind. Real sandboxes, real nftables, local upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::upstream::{Certs, Upstream, fixture, gateway_config, make_repos};
use common::{Env, assert_no_trace, stderr, stdout};

/// The host's first global IPv4 address (a machine with none cannot run this test).
fn host_ip() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no global IPv4 address on this host: {text}"))
}

/// The installation's link-name prefix and nftables table (derived from its state dir).
fn net_names(env: &Env) -> (String, String) {
    use sha2::Digest;
    let d = sha2::Sha256::digest(env.state().as_os_str().as_encoded_bytes());
    let tag = format!("{:02x}{:02x}", d[0], d[1]);
    (format!("is{tag}s"), format!("islo_{tag}"))
}

fn links(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Whether the installation's links are all gone within a few seconds: a removal deletes its
/// link on a thread of its own (the kernel's RCU wait after the link leaves the host's tables
/// is not the removal's to wait for).
fn links_gone(prefix: &str) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !links(prefix).is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    links(prefix).is_empty()
}

fn table_exists(table: &str) -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn bypass_attempts_fail() {
    let certs = Certs::signed();
    let up = Upstream::start(&certs, "0.0.0.0", None);
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let env = Env::with_gateway("", &gateway_config(&certs));
    // The default profile allows everything: what stops these is below the rules.
    env.ok(&[
        "use",
        "other",
        "-i",
        &env.debian(),
        "--",
        "sh",
        "-c",
        "nohup python3 -m http.server 8000 >/tmp/srv.log 2>&1 &",
    ]);
    let other_gw = stdout(&env.islo(&[
        "use",
        "other",
        "--",
        "sh",
        "-c",
        "awk '/^nameserver/{print $2}' /etc/resolv.conf",
    ]));
    let o: std::net::Ipv4Addr = other_gw.trim().parse().unwrap();
    let other_ip = std::net::Ipv4Addr::from(u32::from(o) + 1);
    env.ok(&["use", "box", "-i", &env.debian(), "--", "true"]);
    env.ok(&[
        "cp",
        &fixture("egress_probe.py").display().to_string(),
        "box:/tmp/probe.py",
    ]);
    let cfg = serde_json::json!({
        "host_ip": host_ip(), "http_port": up.http,
        "udp_port": udp.local_addr().unwrap().port(), "other_ip": other_ip.to_string(),
    });
    // As root in the sandbox: even its root cannot get past.
    let o = env.islo(&[
        "use",
        "box",
        "--run-as-user",
        "root",
        "--",
        "python3",
        "/tmp/probe.py",
        &cfg.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let s = |k: &str| r[k].to_string();
    for k in ["direct_ip", "host_link", "other_sandbox"] {
        assert!(
            s(k).starts_with("\"502") && s(k).contains("may not reach"),
            "{k}: {}",
            s(k)
        );
    }
    assert!(
        s("metadata").starts_with("\"502") || s("metadata").starts_with("\"403"),
        "metadata: {}",
        s("metadata")
    );
    assert!(
        s("loopback").contains("error"),
        "the sandbox's loopback is its own: {}",
        s("loopback")
    );
    assert!(
        s("raw_socket").contains("PermissionError"),
        "raw socket: {}",
        s("raw_socket")
    );
    assert!(
        s("raw_tcp").contains("reset") || s("raw_tcp").contains("closed"),
        "raw TCP: {}",
        s("raw_tcp")
    );
    assert_eq!(
        r["dns_elsewhere"], r["gateway_ip"],
        "a DNS server of its own choosing answers with the gateway"
    );
    for v in r["ipv6"].as_array().unwrap() {
        assert!(v.as_str().unwrap().starts_with("refused"), "IPv6: {v}");
    }
    let mut buf = [0u8; 64];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "a UDP datagram reached the host"
    );
    assert!(
        up.requests().is_empty(),
        "something reached the upstream: {:?}",
        up.requests()
    );
    let served = stdout(&env.islo(&["use", "other", "--", "cat", "/tmp/srv.log"]));
    assert!(
        !served.contains("GET"),
        "the other sandbox was reached: {served}"
    );
    // The reset flow and the refusals are in the log.
    std::thread::sleep(Duration::from_millis(300));
    let log = env.ok(&["gateway", "log", "box", "-o", "json"]);
    assert!(log.contains("neither HTTP nor TLS"), "{log}");
    assert!(log.contains("\"action\":\"error\""), "{log}");
}

#[test]
fn upstream_with_a_bad_certificate_is_refused() {
    let good = Certs::signed();
    let bad = Certs::self_signed();
    let up = Upstream::start(&bad, "127.0.0.1", None);
    let env = Env::with_gateway("", &gateway_config(&good));
    let url = format!("https://up.test:{}/echo/bad", up.https);
    let o = env.islo(&[
        "use",
        "box",
        "-i",
        &env.debian(),
        "--",
        "curl",
        "-sS",
        "-m",
        "20",
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    let out = stdout(&o);
    assert!(out.trim_end().ends_with("502"), "{out}");
    assert!(out.contains("certificate"), "the body says why: {out}");
    assert!(up.requests().is_empty());
}

#[test]
fn pip_git_and_curl_work_through_the_gateway_and_nothing_is_left_behind() {
    let certs = Certs::signed();
    let root = tempfile::tempdir().unwrap();
    let content = make_repos(root.path());
    let up = Upstream::start(&certs, "127.0.0.1", Some(&content));
    let env = Env::with_gateway("", &gateway_config(&certs));
    let (prefix, table) = net_names(&env);
    let s = up.https;
    let script = format!(
        "set -e; \
         pip install -q --user --break-system-packages --index-url https://pypi.test:{s}/simple/ islo-demo; \
         python3 -c 'import islo_demo; print(\"pip\", islo_demo.VALUE)'; \
         git clone -q https://git.test:{s}/repo.git /tmp/repo; cat /tmp/repo/hello.txt; \
         curl -fsS https://up.test:{s}/echo/curl"
    );
    let o = env.islo(&["use", "box", "-i", &env.debian(), "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("pip 42"), "{out}");
    assert!(out.contains("hello through the gateway"), "{out}");
    assert!(out.contains("/echo/curl"), "{out}");

    let id = env.id_of("box");
    assert_eq!(links(&prefix).len(), 1, "one link while the sandbox runs");
    assert!(table_exists(&table));
    env.ok(&["stop", "box", "-f"]);
    assert!(links_gone(&prefix), "a stopped sandbox has no link");
    assert!(!Path::new("/run/netns").join(format!("islo-{id}")).exists());
    env.ok(&[
        "use",
        "box",
        "--",
        "curl",
        "-fsS",
        &format!("https://up.test:{s}/echo/again"),
    ]);
    env.ok(&["rm", "box", "-f"]);
    assert_no_trace(&env, &id);
    assert!(links_gone(&prefix), "links left behind");
    env.stop_islod();
    assert!(!table_exists(&table), "nftables table {table} left behind");
}
