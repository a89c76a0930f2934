//! Running one command for islod and streaming it over the connection.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};

use islo_agent::proto::{self, ExecRequest, ExitStatus, FrameKind, ProtoError};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::conn::{Out, drain};
use crate::{reaper, users};

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
    let spawn = || {
        let mut cmd = command(&req.argv, &req.env, &user, &req.workdir);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd.spawn()
    };
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
    let pgid = Pid::from_child(&child);
    let finished = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = channel();
    let outputs: [(Option<Box<dyn Read + Send>>, FrameKind); 2] = [
        (
            child.stdout.take().map(|o| Box::new(o) as _),
            FrameKind::Stdout,
        ),
        (
            child.stderr.take().map(|e| Box::new(e) as _),
            FrameKind::Stderr,
        ),
    ];
    let mut pumps = 0;
    let mut threads = Ok(());
    for (src, kind) in outputs {
        if let Some(src) = src {
            threads = threads.and(pump(
                src,
                kind,
                out.clone(),
                progress.clone(),
                done_tx.clone(),
            ));
            pumps += 1;
        }
    }
    let (stdin, input, fin) = (child.stdin.take(), stream.try_clone()?, finished.clone());
    let threads = threads.and(crate::conn::thread(move || {
        forward_input(input, stdin, pgid, fin);
    }));
    if let Err(e) = threads {
        // Half wired: the command goes (the reaper collects it) and the client learns why.
        let _ = kill_process_group(pgid, Signal::KILL);
        refused(
            &out,
            &crate::conn::not_started("a thread for the command", &e),
        );
        return Ok(());
    }

    let status = exited.recv().unwrap_or(ExitStatus {
        code: 255,
        signal: None,
    });
    finished.store(true, Ordering::SeqCst);
    drain(pumps, &done_rx, &progress);
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
/// `env` sets them). Stdio and process group are the caller's.
pub fn command(
    argv: &[String],
    env: &[(String, String)],
    user: &users::User,
    workdir: &str,
) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear();
    // Login variables of the user, unless the caller set them.
    for (k, v) in [
        ("HOME", &user.home),
        ("USER", &user.name),
        ("LOGNAME", &user.name),
    ] {
        if !env.iter().any(|(n, _)| n == k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workdir);
    let groups: Vec<libc::gid_t> = user.groups.clone();
    let (uid, gid) = (user.uid, user.gid);
    // SAFETY: the closure runs in the forked (single-threaded) child before exec and only
    // makes the open/write/close/setgroups/setgid/setuid system calls, which are
    // async-signal-safe; `groups` and the C strings were allocated before the fork and are
    // only read. Order matters: the OOM score, groups and gid while still root, uid last.
    unsafe {
        cmd.pre_exec(move || {
            write_oom_score()?;
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The OOM score every command starts with, far above the agent's own (islod's, normally
/// 0), so that under memory pressure the kernel takes a workload process, never the agent.
pub const WORKLOAD_OOM_SCORE_ADJ: &std::ffi::CStr = c"500";

/// Set the calling process's OOM score to [`WORKLOAD_OOM_SCORE_ADJ`]. Only system calls, so it
/// may run between fork and exec. A score already higher stays (lowering it is refused).
fn write_oom_score() -> std::io::Result<()> {
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

fn pump(
    mut src: impl Read + Send + 'static,
    kind: FrameKind,
    out: Arc<Out>,
    progress: Arc<AtomicU64>,
    done: Sender<()>,
) -> std::io::Result<()> {
    crate::conn::thread(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    progress.fetch_add(n as u64, Ordering::SeqCst);
                    if !out.send(kind, &buf[..n]) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    })
}

/// Client frames: stdin data, end of stdin, signals. A client that goes away before the
/// command exits takes the command's process group with it.
fn forward_input(
    mut conn: UnixStream,
    mut stdin: Option<std::process::ChildStdin>,
    pgid: Pid,
    finished: Arc<AtomicBool>,
) {
    loop {
        match proto::read_frame(&mut conn) {
            Ok(Some(f)) => match f.kind {
                FrameKind::Stdin => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&f.payload).is_err()
                    {
                        stdin = None;
                    }
                }
                FrameKind::StdinEof => stdin = None,
                FrameKind::Signal => {
                    let sig = f
                        .payload
                        .first()
                        .and_then(|s| Signal::from_named_raw(i32::from(*s)));
                    if let Some(sig) = sig {
                        let _ = kill_process_group(pgid, sig);
                    }
                }
                _ => {}
            },
            Ok(None) | Err(_) => {
                if !finished.load(Ordering::SeqCst) {
                    let _ = kill_process_group(pgid, Signal::KILL);
                }
                return;
            }
        }
    }
}
