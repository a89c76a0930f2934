//! The deployment files in `deploy/` have the shape a cluster needs: no Kubernetes API server
//! runs here to validate them, so this checks what they must say, and parses every islod.yaml
//! they carry with islod's own config parser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn deploy(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(p)
}

fn read(p: &str) -> String {
    std::fs::read_to_string(deploy(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The YAML documents of a multi-document file, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.iter()
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .collect()
}

fn cluster_config(path: &str, yaml: &str) -> islod::config::ClusterConfig {
    let f = islod::config::parse_file(Path::new(path), yaml).unwrap();
    let c = f.cluster.expect("a cluster: section");
    c.check().unwrap();
    c
}

#[test]
fn the_kubernetes_manifests_hold_etcd_the_nodes_and_a_service() {
    let docs = documents(&read("kubernetes/islo.yaml"));
    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    for d in &docs {
        assert!(d["apiVersion"].is_string() && d["kind"].is_string(), "{d}");
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], "islo", "{d}");
        }
    }
    let etcd = find("StatefulSet", "etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    assert_eq!(find("Service", "etcd")["spec"]["clusterIP"], "None");

    let ds = &find("DaemonSet", "islod")["spec"]["template"]["spec"];
    assert_eq!(ds["hostNetwork"], true);
    assert_eq!(ds["hostPID"], true);
    let c = &ds["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for v in ["ISLOD_NODE_NAME", "ISLOD_ADVERTISE"] {
        assert!(env.contains(&v), "{v} missing from {env:?}");
    }
    let state = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/var/lib/islo")
        .unwrap();
    assert_eq!(
        state["mountPropagation"], "Bidirectional",
        "sandbox mounts must reach the host"
    );
    assert_eq!(find("Service", "islod")["spec"]["selector"]["app"], "islod");

    // The config the pods get parses, and names the etcd members the StatefulSet makes.
    let yaml = find("ConfigMap", "islod-config")["data"]["islod.yaml"]
        .as_str()
        .unwrap();
    let cfg = cluster_config("islod.yaml (ConfigMap)", yaml);
    assert_eq!(cfg.etcd.len(), 3);
    assert!(cfg.etcd[2].contains("etcd-2.etcd.islo.svc"));
    assert_eq!(cfg.peer_name.as_deref(), Some("islod-node"));
}

#[test]
fn the_systemd_files_and_the_example_config_fit_together() {
    let unit = read("systemd/islod.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/islod --config /etc/islo/islod.yaml serve"));
    assert!(
        unit.contains("KillMode=process"),
        "stopping islod must not kill sandboxes"
    );
    let cfg = cluster_config("islod-cluster.yaml", &read("islod-cluster.yaml"));
    assert!(cfg.etcd_tls.is_some() && cfg.etcd.iter().all(|u| u.starts_with("https://")));
    assert!(
        cfg.snapshot_registry.is_some(),
        "snapshots travel between the nodes"
    );
    let env = read("systemd/etcd.env");
    for u in &cfg.etcd {
        let host = u.trim_start_matches("https://").trim_end_matches(":2379");
        assert!(env.contains(host), "etcd.env has no member at {host}");
    }
}
