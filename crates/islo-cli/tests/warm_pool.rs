//! Sandboxes started ahead (`warm_pool`), end to end (crun, busybox): one waits at the lowest
//! CPU priority; `islo use NEW` of its kind takes it, named (its hostname too) and at normal
//! priority, and the pool starts another; an islod keeping no pool removes them, leaving
//! nothing on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The ids of the sandboxes the pool holds running, read from islod's log (no tenant lists
/// them): those it logged as created and not yet as created for someone.
fn warm_ids(env: &Env) -> Vec<String> {
    let log = plain(&std::fs::read_to_string(env.state().join("islod.log")).unwrap_or_default());
    let made = |l: &&str| l.contains("sandbox created") && l.contains("sandbox=warm-");
    let mut ids: Vec<String> = log
        .lines()
        .filter(made)
        .filter_map(|l| {
            Some(
                l.split("id=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        })
        .collect();
    ids.retain(|id| {
        !log.lines()
            .any(|l| l.contains("started ahead") && l.contains(id.as_str()))
    });
    ids
}

/// `text` without its terminal colours.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Wait for the pool to hold one running sandbox other than `not`.
fn one_warm(env: &Env, not: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<String> = warm_ids(env)
            .into_iter()
            .filter(|i| !not.contains(i))
            .collect();
        if let [id] = ids.as_slice() {
            return id.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no sandbox started ahead: {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The nice value of process `pid` (`/proc/PID/stat`'s 19th field).
fn nice(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace()
        .nth(19 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_create_takes_a_sandbox_started_ahead_named_and_at_normal_priority() {
    let env = Env::with_config("warm_pool: 1");
    let bb = env.busybox();
    env.ok(&["use", "first", "-i", &bb, "--", "true"]);
    let warm = one_warm(&env, &[]);
    assert_eq!(
        nice(agent_pid(&warm)),
        19,
        "it waits at the lowest priority"
    );

    let out = env.ok(&[
        "use",
        "second",
        "-i",
        &bb,
        "--",
        "sh",
        "-c",
        "hostname; cut -d' ' -f19 /proc/self/stat",
    ]);
    assert_eq!(
        out, "second\n0\n",
        "named, and its commands at normal priority"
    );
    assert_eq!(
        env.id_of("second"),
        warm,
        "the create took the sandbox started ahead"
    );
    assert_eq!(nice(agent_pid(&warm)), 0);
    let listed = env.ok(&["ls", "-o", "plain"]);
    let mut names: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["first", "second"],
        "the pool's sandboxes are nobody's"
    );

    // The pool starts another; a restart keeps it, one keeping no pool removes it.
    let next = one_warm(&env, std::slice::from_ref(&warm));
    env.ok(&["rm", "first", "-f"]);
    env.ok(&["rm", "second", "-f"]);
    env.stop_islod();
    let out = env
        .islo_cmd()
        .env("ISLOD_WARM_POOL", "0")
        .arg("ls")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_trace(&env, &next);
    assert_no_trace(&env, &warm);
    let left = std::fs::read_dir(env.state().join("sandboxes"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "sandboxes left in the state directory");
}
