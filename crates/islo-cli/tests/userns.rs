//! Every sandbox in a user namespace of its own, through the real CLI and real sandboxes:
//! its processes and files are its own host ids, never the host's root; what islod writes
//! into it, copies, snapshots and exports are owned as inside; sandboxes made without one
//! move into one when restarted; hosts that cannot do it refuse clearly; and escapes tried
//! as root inside fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::{Env, agent_pid, stderr, stdout};

const PY: &str = "python:3.12-slim";

/// As root in `sandbox`: run `script` with sh, require success, return stdout.
#[track_caller]
fn root_ok(env: &Env, sandbox: &str, script: &str) -> String {
    let o = env.root_sh(sandbox, script);
    assert!(o.status.success(), "{script}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// The first host id of `sandbox`'s range, from `islo status -o json`.
fn first_id(env: &Env, sandbox: &str) -> u32 {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", sandbox, "-o", "json"])).unwrap();
    assert_eq!(v["isolation"]["user_namespace"], true, "{v}");
    u32::try_from(v["isolation"]["host_ids"]["first"].as_u64().unwrap()).unwrap()
}

/// A command run in the mount namespace where a running sandbox's disk is mounted, and the
/// path of its writable layer there.
fn in_its_mounts(env: &Env, sandbox: &str) -> (Command, std::path::PathBuf) {
    let dir = env.state().join("sandboxes").join(env.id_of(sandbox));
    let mut c = Command::new("nsenter");
    c.arg(format!("--mount={}", dir.join("mntns").display()));
    (c, dir.join("disk/upper"))
}

/// Host (uid, gid) of a path in the sandbox's writable layer.
fn upper_owner(env: &Env, sandbox: &str, path: &str) -> (u32, u32) {
    let (mut c, upper) = in_its_mounts(env, sandbox);
    let p = upper.join(path.trim_start_matches('/'));
    let o = c.args(["stat", "-c", "%u %g"]).arg(&p).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let (u, g) = out
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}: {}", p.display(), String::from_utf8_lossy(&o.stderr)));
    (u.parse().unwrap(), g.parse().unwrap())
}

/// Uids (real, effective, saved, fs) of every live process of sandbox `id`, seen from the
/// host (an exited one waiting for the host's init to reap it holds nothing).
fn host_uids(id: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        if !cg.contains(id) || status.lines().any(|l| l.starts_with("State:\tZ")) {
            continue;
        }
        if let Some(l) = status.lines().find(|l| l.starts_with("Uid:")) {
            v.extend(
                l.split_whitespace()
                    .skip(1)
                    .map(|u| u.parse::<u32>().unwrap()),
            );
        }
    }
    v
}

#[test]
fn processes_files_and_copies_are_the_sandboxs_own_ids() {
    let env = Env::new();
    assert!(env.sh("mine", "true").status.success());
    let first = first_id(&env, "mine");
    assert!(
        first >= 1 << 30,
        "the default range is above /etc/subuid's: {first}"
    );
    let id = env.id_of("mine");
    // A process left running as the user and one as root.
    assert!(
        env.sh("mine", "setsid sleep 60 </dev/null >/dev/null 2>&1 &")
            .status
            .success()
    );
    root_ok(&env, "mine", "setsid sleep 61 </dev/null >/dev/null 2>&1 &");
    let uids = host_uids(&id);
    assert!(uids.len() >= 8, "the agent and both sleeps: {uids:?}");
    assert!(
        uids.iter().all(|u| (first..first + 65536).contains(u)),
        "every process is in the range, none is the host's root: {uids:?}"
    );
    assert!(
        uids.contains(&first) && uids.contains(&(first + 1000)),
        "{uids:?}"
    );
    let o = env.ok(&["status", "mine"]);
    assert!(
        o.contains(&format!(
            "Isolation: container, user namespace (root is host uid {first}"
        )),
        "{o}"
    );

    // Inside, ids are the image's; the writable layer holds the range's.
    let inside = root_ok(
        &env,
        "mine",
        "cat /proc/self/uid_map; stat -c '%u %g' / /bin/busybox /etc/resolv.conf; \
         touch /root-file",
    );
    assert!(
        env.sh("mine", "touch /workspace/user-file")
            .status
            .success()
    );
    let mut lines = inside.lines();
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &first.to_string(), "65536"]);
    assert_eq!(lines.collect::<Vec<_>>(), ["0 0", "0 0", "0 0"], "{inside}");
    assert_eq!(upper_owner(&env, "mine", "/root-file"), (first, first));
    assert_eq!(
        upper_owner(&env, "mine", "/workspace/user-file"),
        (first + 1000, first + 1000)
    );

    // islo cp both ways: uploads belong to the user inside, modes kept.
    let local = env.dir.path().join("in");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("up.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        local.join("up.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    env.ok(&["cp", local.to_str().unwrap(), "mine:/workspace/in"]);
    let o = env.ok(&[
        "use",
        "mine",
        "--",
        "stat",
        "-c",
        "%u %g %a",
        "/workspace/in/up.sh",
        "/workspace/in",
    ]);
    assert_eq!(
        o.lines().collect::<Vec<_>>(),
        ["1000 1000 750", "1000 1000 755"],
        "{o}"
    );
    assert_eq!(
        upper_owner(&env, "mine", "/workspace/in/up.sh").0,
        first + 1000
    );
    let down = env.dir.path().join("down");
    env.ok(&["cp", "mine:/workspace/in", down.to_str().unwrap()]);
    let m = std::fs::metadata(down.join("up.sh")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o750);
    assert_eq!(
        std::fs::read_to_string(down.join("up.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
}

#[test]
fn snapshots_restore_into_another_range_and_export_owned_as_inside() {
    let env = Env::new();
    assert!(
        env.islo(&["use", "src", "-i", PY, "--", "true"])
            .status
            .success()
    );
    root_ok(
        &env,
        "src",
        "set -e; cd /workspace; echo a > by-user; chown 1000:1000 by-user; echo r > by-root; \
         echo o > odd; chown 1234:4321 odd",
    );
    env.ok(&["snapshot", "save", "src", "--name", "owners"]);
    let o = env.islo(&["use", "dst", "--snapshot", "owners", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (first_id(&env, "src"), first_id(&env, "dst"));
    assert_ne!(a, b, "each sandbox has its own range");
    let o = root_ok(
        &env,
        "dst",
        "cd /workspace; stat -c '%n %u %g %a' by-user by-root odd",
    );
    assert_eq!(
        o.lines().collect::<Vec<_>>(),
        [
            "by-user 1000 1000 644",
            "by-root 0 0 644",
            "odd 1234 4321 644"
        ],
        "{o}"
    );
    // Written in dst, they are dst's host ids.
    root_ok(&env, "dst", "touch /workspace/odd");
    assert_eq!(
        upper_owner(&env, "dst", "/workspace/odd"),
        (b + 1234, b + 4321)
    );

    // The export is an ordinary image owned as inside.
    let archive = env.dir.path().join("owners.tar");
    env.ok(&[
        "snapshot",
        "export",
        "owners",
        "--to",
        &format!("oci-archive:{}", archive.display()),
    ]);
    let layout = env.dir.path().join("layout");
    let c = Command::new("skopeo")
        .args([
            "copy",
            &format!("oci-archive:{}", archive.display()),
            &format!("dir:{}", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let mut listing = String::new();
    for e in std::fs::read_dir(&layout).unwrap().flatten() {
        let t = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(e.path())
            .output()
            .unwrap();
        listing.push_str(&String::from_utf8_lossy(&t.stdout));
    }
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {listing}"))
            .to_string()
    };
    assert!(
        line("workspace/odd").contains(" 1234/4321 "),
        "{}",
        line("workspace/odd")
    );
    assert!(line("workspace/by-user").contains(" 1000/1000 "));
    assert!(line("workspace/by-root").contains(" 0/0 "));
    assert!(
        !listing.contains(&format!(" {a}/")),
        "no host id of the range leaks into the image"
    );
}

/// A root-only file on the host that no sandbox may read.
struct HostSecret(std::path::PathBuf);

impl HostSecret {
    fn new() -> Self {
        let p = std::path::PathBuf::from(format!(
            "/var/tmp/islo-userns-secret-{}",
            std::process::id()
        ));
        std::fs::write(&p, "host secret\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        Self(p)
    }
}

impl Drop for HostSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn escapes_tried_as_root_inside_fail() {
    let env = Env::new();
    let secret = HostSecret::new();
    let s = secret.0.display().to_string();
    assert!(
        env.islo(&["use", "esc", "-i", PY, "--", "true"])
            .status
            .success()
    );
    assert!(
        env.islo(&["use", "other", "-i", PY, "--", "true"])
            .status
            .success()
    );
    root_ok(
        &env,
        "other",
        "echo other-secret > /root/mine; setsid sleep 60 </dev/null >/dev/null 2>&1 &",
    );
    mounts_devices_and_host_settings_are_out_of_reach(&env);
    proc_and_chroot_tricks_stay_inside(&env, &s);
    a_setuid_binary_is_the_sandboxs_root_on_the_host(&env);
    its_user_namespace_alone_reaches_nothing_of_the_host(&env, &secret);
}

/// Mounts it should not have, or not writable: the agent binary, remounts, new mounts,
/// devices, host settings, its network link.
fn mounts_devices_and_host_settings_are_out_of_reach(env: &Env) {
    let agent_before = std::fs::read(common::agent_path()).unwrap();
    let tries = [
        "echo x > /.islo/islo-agent",
        "mount -o remount,rw /proc/sys",
        "mount -t tmpfs none /mnt",
        "mount --bind / /mnt",
        "mknod /tmp/sda b 8 0",
        "echo 1 > /proc/sys/kernel/sysrq",
        "echo x > /sys/kernel/uevent_helper",
        "hostname escaped",
        "ip link set eth0 down",
    ];
    let script: String = tries
        .iter()
        .map(|t| format!("( {t} ) 2>/dev/null && echo 'ESCAPED: {t}'; "))
        .collect();
    let o = env.root_sh("esc", &format!("{script} echo done"));
    assert_eq!(stdout(&o).trim(), "done", "{}", stdout(&o));
    assert_eq!(std::fs::read(common::agent_path()).unwrap(), agent_before);
}

/// `/proc/1/root`, `/proc/*/fd` and the chroot climb stay inside; another sandbox is not
/// seen; `open_by_handle_at` fails; a nested namespace's mount never reaches the host.
fn proc_and_chroot_tricks_stay_inside(env: &Env, s: &str) {
    let py = format!(
        "import os, glob\n\
         found = []\n\
         for p in glob.glob('/proc/*/root') + glob.glob('/proc/*/fd/*') + glob.glob('/proc/*/cwd'):\n\
         \x20   for rel in ['{s}', 'root/mine', '{s}'.lstrip('/')]:\n\
         \x20       try:\n\
         \x20           found.append(open(os.path.join(p, rel)).read())\n\
         \x20       except Exception:\n\
         \x20           pass\n\
         os.makedirs('/tmp/jail', exist_ok=True)\n\
         os.chroot('/tmp/jail')\n\
         for _ in range(64):\n\
         \x20   os.chdir('..')\n\
         os.chroot('.')\n\
         for rel in ['{s}', '/root/mine']:\n\
         \x20   try:\n\
         \x20       found.append(open(rel).read())\n\
         \x20   except Exception:\n\
         \x20       pass\n\
         print('found', found)\n"
    );
    let o = root_ok(env, "esc", &format!("python3 -c \"{py}\""));
    assert_eq!(o.trim(), "found []", "{o}");
    let o = root_ok(
        env,
        "esc",
        "ls /proc | grep -c '^[0-9]' ; cat /proc/*/root/root/mine 2>/dev/null; true",
    );
    assert!(!o.contains("other-secret"), "{o}");

    // open_by_handle_at (the "shocker" escape) needs CAP_DAC_READ_SEARCH of the host.
    let o = root_ok(
        env,
        "esc",
        "python3 -c \"import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
         buf = ctypes.create_string_buffer(8 + 128); ctypes.c_uint.from_buffer(buf).value = 128; \
         mnt = ctypes.c_int(); r = libc.name_to_handle_at(-100, b'/', buf, ctypes.byref(mnt), 0); \
         fd = libc.open_by_handle_at(os.open('/', os.O_RDONLY), buf, 0); \
         print('handle', fd, os.strerror(ctypes.get_errno()))\"",
    );
    assert!(o.contains("handle -1"), "{o}");

    // A nested user namespace may be made or refused; a mount in it never reaches the host.
    let o = env.root_sh(
        "esc",
        "unshare -Urm sh -c 'mount -t tmpfs nested /mnt && touch /mnt/x && echo nested-ok'",
    );
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !after.contains(" nested "),
        "a nested mount reached the host: {}",
        stdout(&o)
    );
}

/// A setuid binary made inside is the sandbox's root on the host, no more.
fn a_setuid_binary_is_the_sandboxs_root_on_the_host(env: &Env) {
    let first = first_id(env, "esc");
    root_ok(
        env,
        "esc",
        "cp /usr/bin/id /workspace/suid-id && chmod 4755 /workspace/suid-id",
    );
    assert_eq!(upper_owner(env, "esc", "/workspace/suid-id").0, first);
    let dir = tempfile::Builder::new()
        .prefix("islo-suid")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let copy = dir.path().join("suid-id");
    let (mut cp, upper) = in_its_mounts(env, "esc");
    assert!(
        cp.args(["cp", "-p"])
            .arg(upper.join("workspace/suid-id"))
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .arg("-u")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        first.to_string(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Left the mount namespace (simulated: the host joins only its user namespace): the
/// sandbox's root cannot read, write or make a root-only host file.
fn its_user_namespace_alone_reaches_nothing_of_the_host(env: &Env, secret: &HostSecret) {
    let s = secret.0.display().to_string();
    let pid = agent_pid(&env.id_of("esc"));
    let o = Command::new("nsenter")
        .arg(format!("--user=/proc/{pid}/ns/user"))
        .args(["cat", &s])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "read the host's secret: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Nor write to one, nor make files where only the host's root may.
    let marker = format!("/etc/islo-userns-escape-{}", std::process::id());
    let o = Command::new("nsenter")
        .arg(format!("--user=/proc/{pid}/ns/user"))
        .args([
            "sh",
            "-c",
            &format!("echo x >> {s}; echo x > {marker}; id -u"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "root, inside its namespace"
    );
    assert_eq!(std::fs::read_to_string(&secret.0).unwrap(), "host secret\n");
    assert!(!Path::new(&marker).exists(), "made {marker}");
}

#[test]
fn a_sandbox_made_without_a_user_namespace_moves_into_one_when_restarted() {
    let env = Env::with_config("isolation:\n  userns: false\n");
    assert!(
        env.islo(&["use", "old", "-i", PY, "--", "true"])
            .status
            .success()
    );
    root_ok(
        &env,
        "old",
        "set -e; cd /workspace; echo u > by-user; chown 1000:1000 by-user; echo r > by-root; \
         cp /usr/bin/id suid-id; chmod 4755 suid-id; mkdir -p /home/islo/.cache; chown 1000:1000 /home/islo/.cache",
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "old", "-o", "json"])).unwrap();
    assert_eq!(v["isolation"]["user_namespace"], false);
    let o = env.ok(&["status", "old"]);
    assert!(
        o.contains("Isolation: container; reduced isolation")
            && o.contains("isolation.userns is false"),
        "{o}"
    );
    assert_eq!(upper_owner(&env, "old", "/workspace/by-user"), (1000, 1000));
    let id = env.id_of("old");
    assert!(
        host_uids(&id).contains(&0),
        "without a user namespace its root is the host's"
    );

    // The operator turns user namespaces on: the running sandbox is adopted as it is, and says so.
    env.stop_islod();
    let cfg = env.dir.path().join("islod.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  userns: false\n", "  userns: true\n");
    std::fs::write(&cfg, text).unwrap();
    let o = env.ok(&["status", "old"]);
    assert!(
        o.contains("without a user namespace") && o.contains("stop and start it"),
        "{o}"
    );
    assert_eq!(
        env.ok(&["use", "old", "--", "cat", "/workspace/by-user"])
            .trim(),
        "u"
    );

    env.ok(&["stop", "old"]);
    env.ok(&["use", "old", "--", "true"]);
    let first = first_id(&env, "old");
    let o = root_ok(
        &env,
        "old",
        "cd /workspace; stat -c '%n %u %g %a' by-user by-root suid-id /home/islo/.cache",
    );
    assert_eq!(
        o.lines().collect::<Vec<_>>(),
        [
            "by-user 1000 1000 644",
            "by-root 0 0 644",
            "suid-id 0 0 4755",
            "/home/islo/.cache 1000 1000 755"
        ],
        "{o}"
    );
    assert_eq!(
        upper_owner(&env, "old", "/workspace/by-user"),
        (first + 1000, first + 1000)
    );
    assert_eq!(
        upper_owner(&env, "old", "/workspace/by-root"),
        (first, first)
    );
    let uids = host_uids(&id);
    assert!(
        !uids.is_empty() && uids.iter().all(|u| *u >= first),
        "{uids:?}"
    );
    // It works as before, as the user.
    assert_eq!(
        env.ok(&[
            "use",
            "old",
            "--",
            "sh",
            "-c",
            "echo more >> /workspace/by-user && id -u"
        ])
        .trim(),
        "1000"
    );
}

/// A state directory on overlayfs, which cannot be idmapped; unmounted when dropped (after
/// the installation, declared later, is dropped).
struct OverlayState(std::path::PathBuf);

impl OverlayState {
    fn mount(env: &Env) -> Self {
        let base = env.dir.path().join("ovl");
        for d in ["lower", "upper", "work"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::create_dir_all(env.state()).unwrap();
        let opts = format!(
            "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
            base.display()
        );
        let o = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(env.state())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Self(env.state())
    }
}

impl Drop for OverlayState {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_host_without_idmapped_mounts_refuses_clearly_unless_told_to_run_without() {
    let mut _ovl: Option<OverlayState> = None;
    let env = Env::new();
    _ovl = Some(OverlayState::mount(&env));
    let o = env.sh("nope", "true");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("idmapped mounts") && err.contains("isolation: {userns: false}"),
        "{err}"
    );
    let ls = env.ok(&["ls", "-o", "json"]);
    assert_eq!(ls.trim(), "[]", "nothing half-made");
    let left: Vec<_> = std::fs::read_dir(env.state().join("sandboxes"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    env.stop_islod();
    let cfg = env.dir.path().join("islod.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("isolation:\n  userns: false\n");
    std::fs::write(&cfg, text).unwrap();
    let o = env.sh("plain", "echo ran");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ran");
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "plain", "-o", "json"])).unwrap();
    assert_eq!(v["isolation"]["user_namespace"], false);
    assert!(
        v["isolation"]["warning"]
            .as_str()
            .unwrap()
            .contains("reduced isolation"),
        "{v}"
    );
    drop(env);
}

#[test]
fn an_exhausted_id_space_is_a_clear_error_and_nothing_is_half_made() {
    let claims = tempfile::tempdir().unwrap();
    let env = Env::with_config(&format!(
        "isolation:\n  id_base: {}\n  id_count: 65536\n  id_claims_dir: {}\n",
        0xA000_0000u32,
        claims.path().display()
    ));
    assert!(env.sh("one", "true").status.success());
    assert_eq!(first_id(&env, "one"), 0xA000_0000);
    let o = env.sh("two", "true");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no free id range") && err.contains("isolation.id_count"),
        "{err}"
    );
    let names: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["ls", "-o", "json"])).unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        std::fs::read_dir(env.state().join("sandboxes"))
            .unwrap()
            .count(),
        1
    );
    // Freed by rm, the range is had again.
    env.ok(&["rm", "one", "-f"]);
    assert!(!claims.path().join("0").exists(), "rm gives the claim back");
    assert!(env.sh("two", "true").status.success());
    assert_eq!(first_id(&env, "two"), 0xA000_0000);
}

#[test]
fn a_sandbox_that_cannot_get_a_range_stays_stopped_and_says_why() {
    let claims = tempfile::tempdir().unwrap();
    let pool = format!(
        "  id_base: {}\n  id_count: 65536\n  id_claims_dir: {}\n",
        0xA100_0000u32,
        claims.path().display()
    );
    let env = Env::with_config(&format!("isolation:\n  userns: false\n{pool}"));
    assert!(env.sh("old", "echo kept > /workspace/f").status.success());
    env.ok(&["stop", "old"]);
    env.stop_islod();
    let cfg = env.dir.path().join("islod.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("userns: false", "userns: true");
    std::fs::write(&cfg, text).unwrap();
    // The only range goes to a new sandbox; the old one cannot move and says why.
    assert!(env.sh("new", "true").status.success());
    let o = env.sh("old", "true");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("made without a user namespace and cannot be moved into one")
            && err.contains("no free id range"),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "old", "-o", "json"])).unwrap();
    assert_eq!(v["status"], "stopped", "{v}");
    assert_eq!(v["isolation"]["user_namespace"], false);
    // Once a range is free it moves, its files intact.
    env.ok(&["rm", "new", "-f"]);
    let o = env.sh("old", "cat /workspace/f");
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
    assert_eq!(first_id(&env, "old"), 0xA100_0000);
}
