//! One-time preparation of the sandbox at boot, done from inside (so symlinks in the image
//! resolve within the sandbox, never on the host): the default user, its home, `/workspace`
//! and `/tmp`.
//!
//! islod passes `ISLO_USER` (name) and `ISLO_UID` (uid and gid) in the agent's environment.

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};

use crate::users;

/// Whether the preparation is done (set once, by [`start`]'s thread).
static DONE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Prepare `/` on a thread of its own, so the agent answers islod's first ping meanwhile: a
/// new sandbox's first preparation copies `/etc/passwd` and `/etc/group` up from the image,
/// and each copy-up waits for its disk's journal (~1-2 ms each here). Requests that reach the
/// sandbox's files or users wait for it ([`wait`]).
pub fn start() {
    let work = || {
        // Done even if the preparation panics: a request then finds what there is, instead
        // of waiting for ever.
        let _done = Done;
        if let Err(e) = prepare_from_env() {
            eprintln!("islo-agent: preparing the sandbox: {e}");
        }
    };
    if std::thread::Builder::new()
        .name("prepare".into())
        .spawn(work)
        .is_err()
    {
        work();
    }
}

/// Marks the preparation done when dropped.
struct Done;

impl Drop for Done {
    fn drop(&mut self) {
        let (lock, cv) = &DONE;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
    }
}

/// Nothing to prepare (an agent that is not a sandbox's PID 1).
pub fn skip() {
    drop(Done);
}

/// Wait until [`start`]'s preparation is done.
pub fn wait() {
    let (lock, cv) = &DONE;
    let mut done = lock.lock().unwrap_or_else(PoisonError::into_inner);
    while !*done {
        done = cv.wait(done).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Prepare `/` from the agent's environment.
pub fn prepare_from_env() -> std::io::Result<()> {
    let name = std::env::var("ISLO_USER").unwrap_or_else(|_| "islo".into());
    let uid = std::env::var("ISLO_UID")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    prepare(Path::new("/"), &name, uid)
}

/// Ensure `name` exists (uid = gid = `uid`) with a home, and that `/workspace` and `/tmp` exist.
pub fn prepare(root: &Path, name: &str, uid: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("etc"))?;
    let home = format!("/home/{name}");
    let user = match users::lookup(root, name) {
        Some(u) if u.name == name => u,
        _ => {
            let shell = if root.join("bin/bash").exists() {
                "/bin/bash"
            } else {
                "/bin/sh"
            };
            append(
                &root.join("etc/passwd"),
                &format!("{name}:x:{uid}:{uid}:{name}:{home}:{shell}\n"),
            )?;
            let groups = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
            if !groups.lines().any(|l| l.split(':').next() == Some(name)) {
                append(&root.join("etc/group"), &format!("{name}:x:{uid}:\n"))?;
            }
            users::User {
                name: name.into(),
                uid,
                gid: uid,
                home: home.clone(),
                shell: shell.into(),
                groups: vec![uid],
            }
        }
    };
    ensure_dir(root, &user.home, Some((user.uid, user.gid)), 0o755)?;
    ensure_dir(root, "/workspace", Some((user.uid, user.gid)), 0o755)?;
    ensure_dir(root, "/tmp", None, 0o1777)?;
    Ok(())
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let needs_newline = std::fs::read(path)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if needs_newline {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())
}

/// Create `dir` (absolute inside `root`) if missing; only a directory this call creates gets
/// the owner and mode.
fn ensure_dir(root: &Path, dir: &str, owner: Option<(u32, u32)>, mode: u32) -> std::io::Result<()> {
    let path = root.join(dir.trim_start_matches('/'));
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        chown(&path, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_user_once_and_creates_dirs() {
        let dir = std::env::temp_dir().join(format!("islo-prep-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh").unwrap();
        prepare(&dir, "islo", 1000).unwrap();
        prepare(&dir, "islo", 1000).unwrap();
        let passwd = std::fs::read_to_string(dir.join("etc/passwd")).unwrap();
        assert_eq!(passwd.matches("islo:x:1000").count(), 1, "{passwd}");
        assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\nislo:"));
        assert!(dir.join("workspace").is_dir() && dir.join("home/islo").is_dir());
        let tmp = std::fs::metadata(dir.join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
