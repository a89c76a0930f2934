//! Running one command for islod and streaming it over the connection.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use islo_agent::proto::{self, ExecRequest, ExitStatus, FrameKind, ProtoError};
use rustix::process::Pid;

use crate::conn::Out;
use crate::{reaper, relay, spawn, users};

/// Run `req` and stream it on `stream` until it exits.
pub fn run(stream: UnixStream, req: ExecRequest) -> Result<(), ProtoError> {
    let out = Arc::new(Out::new(stream.try_clone()?));
    let user = match check(&req) {
        Ok(u) => u,
        Err(msg) => {
            refused(&out, &msg);
            return Ok(());
        }
    };
    let plan = plan(&req.argv, &req.env, &user, &req.workdir);
    let spawn = |started: &mut dyn FnMut(Pid)| spawn::spawn(&plan, spawn::Stdio::Piped, started);
    let (mut child, exited) = match reaper::spawn_registered(spawn) {
        Ok(c) => c,
        Err(e) if crate::conn::at_process_limit(&e) => {
            refused(&out, crate::conn::PROCESS_LIMIT);
            return Ok(());
        }
        Err(e) => {
            refuse_spawn(&out, &req.argv[0], &e);
            return Ok(());
        }
    };
    let outputs = [
        (child.stdout.take(), FrameKind::Stdout),
        (child.stderr.take(), FrameKind::Stderr),
    ];
    let input = relay::Input::new(stream.try_clone()?, child.stdin.take());
    let (exited, wake) = match child.pidfd.take() {
        Some(pidfd) => (exited, pidfd),
        None => relay::exit_pipe(exited)?,
    };
    let status = relay::relay(&out, outputs, &exited, input, child.pid, &wake);
    out.finish(
        FrameKind::Exit,
        &serde_json::to_vec(&status).unwrap_or_default(),
    );
    Ok(())
}

/// End the exec with an error frame: it could not start.
fn refused(out: &Out, why: &str) {
    let e = proto::AgentError::new(proto::ErrorKind::CannotStart, why);
    out.finish(FrameKind::Error, &e.encode());
}

/// The user to run as, once the request is known to be runnable; else why not.
fn check(req: &ExecRequest) -> Result<users::User, String> {
    if req.argv.is_empty() {
        return Err("empty command".into());
    }
    run_as(&req.user, &req.workdir)
}

/// The user to run as, with `workdir` created for them if missing; else why not.
pub fn run_as(user: &str, workdir: &str) -> Result<users::User, String> {
    let user =
        users::lookup(Path::new("/"), user).ok_or_else(|| format!("unknown user {user:?}"))?;
    ensure_workdir(workdir, &user).map_err(|e| format!("workdir {workdir}: {e}"))?;
    Ok(user)
}

/// A command that cannot start ends like it would in a shell: 127 not found, 126 otherwise.
pub fn refuse_spawn(out: &Out, argv0: &str, e: &std::io::Error) {
    let (code, why) = match e.kind() {
        std::io::ErrorKind::NotFound => (127, "command not found"),
        std::io::ErrorKind::PermissionDenied => (126, "permission denied"),
        _ => (126, "cannot run"),
    };
    out.send(
        FrameKind::Stderr,
        format!("islo: {argv0}: {why} ({e})\n").as_bytes(),
    );
    let status = serde_json::to_vec(&ExitStatus { code, signal: None }).unwrap_or_default();
    out.finish(FrameKind::Exit, &status);
}

/// `argv` as `user` in `workdir` with exactly `env` plus the user's login variables (unless
/// `env` sets them).
pub fn plan<'a>(
    argv: &'a [String],
    env: &[(String, String)],
    user: &'a users::User,
    workdir: &'a str,
) -> spawn::Plan<'a> {
    let mut all: Vec<(String, String)> = [
        ("HOME", &user.home),
        ("USER", &user.name),
        ("LOGNAME", &user.name),
    ]
    .into_iter()
    .filter(|(k, _)| !env.iter().any(|(n, _)| n == k))
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    // A later value of a name wins, as with Command::env.
    for (k, v) in env {
        all.retain(|(n, _)| n != k);
        all.push((k.clone(), v.clone()));
    }
    spawn::Plan {
        argv,
        env: all,
        user,
        workdir,
    }
}

/// The OOM score every command starts with, far above the agent's own (islod's, normally
/// 0), so that under memory pressure the kernel takes a workload process, never the agent.
pub const WORKLOAD_OOM_SCORE_ADJ: &std::ffi::CStr = c"500";

/// Set the calling process's OOM score to [`WORKLOAD_OOM_SCORE_ADJ`] (a new command's child
/// does, before it execs; see `spawn`). A score already higher stays (lowering it is refused).
pub fn write_oom_score() -> std::io::Result<()> {
    let value = WORKLOAD_OOM_SCORE_ADJ.to_bytes();
    // SAFETY: a NUL-terminated static path and a static buffer of `value.len()` bytes; the
    // descriptor is closed on every path.
    unsafe {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, value.as_ptr().cast(), value.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 && err.raw_os_error() != Some(libc::EACCES) {
            return Err(err);
        }
    }
    Ok(())
}

fn ensure_workdir(dir: &str, user: &users::User) -> std::io::Result<()> {
    let path = Path::new(dir);
    if !path.is_absolute() {
        return Err(std::io::Error::other("must be absolute"));
    }
    if path.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut p = path;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(path)?;
    for m in missing {
        std::os::unix::fs::chown(&m, Some(user.uid), Some(user.gid))?;
    }
    Ok(())
}
