//! Starting a command as a user without forking the agent.
//!
//! The agent is multi-threaded, and with many commands running it has hundreds of threads:
//! fork(2) copies its page tables and shoots down the TLBs of every CPU it runs on. A hundred
//! concurrent execs spent nearly half the CPU there. posix_spawn(3) avoids that but cannot
//! change the user, and a helper process that does costs a second exec per command (about
//! 0.7 ms here, most of it glibc's start-up `cpuid`s, which trap in a VM).
//!
//! So the agent does what posix_spawn does inside, with the steps it lacks: `clone(CLONE_VM |
//! CLONE_VFORK)` on a stack of its own. The child shares the agent's memory, and the calling
//! thread sleeps until the child has exec'd or exited. The child runs only [`child_main`]:
//! system calls on data prepared before the clone, no allocation, no locks, no thread-local
//! state but errno (the sleeping caller's, which nothing reads). It resets signal handlers,
//! wires its descriptors, sets the OOM score, session or process group, directory, groups and
//! ids (raw system calls: glibc's set*id would signal the agent's threads), then searches
//! PATH and execs. A failure leaves its errno in shared memory and exits 127.

use std::ffi::{CString, c_int, c_void};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use rustix::process::Pid;

use crate::users::User;

/// The child's stack: it makes system calls and nothing else.
const CHILD_STACK: usize = 64 * 1024;
/// execvp's search path when the command's environment has none (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// What the command's standard descriptors are.
pub enum Stdio<'a> {
    /// Three new pipes, the agent's ends in [`Child`].
    Piped,
    /// All three on this terminal, which becomes the controlling terminal of a new session.
    Terminal(&'a OwnedFd),
}

/// A started command.
pub struct Child {
    pub pid: Pid,
    /// Readable once the command has exited (poll it; the reaper collects the status).
    /// `None` where the kernel makes no pidfd (gVisor answers `CLONE_PIDFD` with none).
    pub pidfd: Option<OwnedFd>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// What to run: `argv` as `user` in `workdir`, with exactly `env`.
pub struct Plan<'a> {
    pub argv: &'a [String],
    pub env: Vec<(String, String)>,
    pub user: &'a User,
    pub workdir: &'a str,
}

/// Start `plan`; Err if it could not start (no process, or its set-up or exec failed).
///
/// `started` runs with the new pid as soon as there is one: the reaper registers it there,
/// under its lock, so an exit is never missed.
pub fn spawn(
    plan: &Plan<'_>,
    stdio: Stdio<'_>,
    started: impl FnOnce(Pid),
) -> std::io::Result<Child> {
    let tty = matches!(stdio, Stdio::Terminal(_));
    let (theirs, [stdin, stdout, stderr]) = descriptors(stdio)?;
    let prepared = Prepared::new(plan, &theirs, tty)?;
    let (pid, pidfd) = prepared.clone_child()?;
    started(pid);
    drop(theirs);
    if prepared.oom_deferred.load(Ordering::SeqCst) {
        // The command has exec'd (or failed): its memory, and its /proc files, are its own.
        let path = format!("/proc/{}/oom_score_adj", pid.as_raw_nonzero());
        let _ = std::fs::write(path, crate::exec::WORKLOAD_OOM_SCORE_ADJ.to_bytes());
    }
    match prepared.error.load(Ordering::SeqCst) {
        0 => Ok(Child {
            pid,
            pidfd,
            stdin,
            stdout,
            stderr,
        }),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// The command's three descriptors (theirs), and the agent's ends of them (pipes only).
fn descriptors(stdio: Stdio<'_>) -> std::io::Result<([OwnedFd; 3], [Option<File>; 3])> {
    Ok(match stdio {
        Stdio::Terminal(t) => ([high(t)?, high(t)?, high(t)?], [None, None, None]),
        Stdio::Piped => {
            let (in_r, in_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let ours = [in_w, out_r, err_r].map(|fd| Some(File::from(fd)));
            ([in_r, out_w, err_w], ours)
        }
    })
}

/// A close-on-exec pipe whose ends sit above 0-2, so that dup2 onto those always makes a
/// copy (and so clears close-on-exec).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let lift = |fd: OwnedFd| {
        if fd.as_raw_fd() > 2 {
            Ok(fd)
        } else {
            high(&fd)
        }
    };
    Ok((lift(r)?, lift(w)?))
}

fn high(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

fn cstring(bytes: impl Into<Vec<u8>>) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "an argument or variable contains a NUL byte",
        )
    })
}

/// Everything the child needs, made before the clone: it only reads it (and writes `error`
/// and one slot of `sh_argv`, while the caller sleeps).
struct Prepared {
    signals: &'static [c_int],
    stdio: [RawFd; 3],
    tty: bool,
    workdir: CString,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    /// Where to look for the command, in order (PATH search done ahead).
    candidates: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// `/bin/sh CANDIDATE ARGS…` for a file that is not an executable format (as execvp).
    sh_argv: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
    error: AtomicI32,
    /// Set by the child when its own `/proc/self/oom_score_adj` is not its to write: after
    /// a restore from a checkpoint, the agent's memory belongs to the host's user namespace
    /// (the checkpoint tool made it), and the child shares it until it execs. The caller
    /// then sets the score of the exec'd command.
    oom_deferred: AtomicBool,
}

impl Prepared {
    fn new(plan: &Plan<'_>, stdio: &[OwnedFd; 3], tty: bool) -> std::io::Result<Self> {
        let args = plan
            .argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let Some(argv0) = plan.argv.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            ));
        };
        let env = plan
            .env
            .iter()
            .map(|(k, v)| cstring(format!("{k}={v}")))
            .collect::<std::io::Result<Vec<_>>>()?;
        let path = plan.env.iter().rev().find(|(k, _)| k == "PATH");
        let candidates = search(argv0, path.map_or(DEFAULT_PATH, |(_, v)| v.as_str()))
            .into_iter()
            .map(cstring)
            .collect::<std::io::Result<Vec<_>>>()?;
        let null = std::ptr::null::<libc::c_char>();
        let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).chain([null]).collect();
        let argv: Vec<_> = ptrs(&args);
        let sh = c"/bin/sh".as_ptr();
        let sh_argv = [sh, null].into_iter().chain(argv.iter().skip(1).copied());
        Ok(Self {
            signals: signals_to_reset(),
            stdio: stdio.each_ref().map(AsRawFd::as_raw_fd),
            tty,
            workdir: cstring(plan.workdir)?,
            uid: plan.user.uid,
            gid: plan.user.gid,
            groups: plan.user.groups.clone(),
            candidates,
            sh_argv: sh_argv.collect(),
            argv,
            envp: ptrs(&env),
            _strings: args.into_iter().chain(env).collect(),
            error: AtomicI32::new(0),
            oom_deferred: AtomicBool::new(false),
        })
    }

    /// Clone the child with every signal blocked (it unblocks them once their handlers are
    /// reset); returns once it has exec'd or exited.
    fn clone_child(&self) -> std::io::Result<(Pid, Option<OwnedFd>)> {
        let mut stack = vec![0u8; CHILD_STACK];
        // The stack grows down from its end, 16-byte aligned.
        let top = stack.as_mut_ptr_range().end as usize & !15;
        // SAFETY: sigfillset/pthread_sigmask write only the local sets. clone's child runs
        // child_main on `stack`, which lives until clone returns, and CLONE_VFORK makes this
        // thread wait until the child has exec'd or exited, so `self` and the stack outlive
        // its every use; child_main only makes system calls (see its SAFETY).
        let (pid, pidfd) = unsafe {
            let (mut all, mut old) = (std::mem::zeroed(), std::mem::zeroed());
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let mut pidfd: c_int = -1;
            let pid = libc::clone(
                child_main,
                top as *mut c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                std::ptr::from_ref(self).cast_mut().cast(),
                &raw mut pidfd,
            );
            let err = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err(err);
            }
            // The kernel made `pidfd` for this call (CLONE_PIDFD) and nothing else owns it;
            // a kernel without pidfds (gVisor) leaves it at -1.
            (pid, (pidfd >= 0).then(|| OwnedFd::from_raw_fd(pidfd)))
        };
        drop(stack);
        let pid =
            Pid::from_raw(pid).ok_or_else(|| std::io::Error::other("clone returned no pid"))?;
        Ok((pid, pidfd))
    }
}

/// The paths execvp would try for `argv0` along `path`, in order.
fn search(argv0: &str, path: &str) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    path.split(':')
        .map(|dir| match dir {
            "" => argv0.to_string(),
            d => format!("{}/{argv0}", d.trim_end_matches('/')),
        })
        .collect()
}

/// The child: set up, exec, or leave the errno and exit 127.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Prepared` the sleeping caller passed to clone; it outlives the
    // child's use (CLONE_VFORK). Everything below is system calls on data prepared before the
    // clone: no allocation, lock or panic path.
    unsafe {
        let p = &*(arg as *const Prepared);
        let errno = become_command(p);
        p.error.store(errno, Ordering::SeqCst);
        libc::_exit(127)
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// Set-up in order, then exec; returns only with the errno of what failed.
///
/// # Safety
/// Only in the child of [`Prepared::clone_child`], with `p` its argument.
unsafe fn become_command(p: &Prepared) -> c_int {
    // SAFETY: the caller's contract; each call is a plain system call on live, prepared data.
    unsafe {
        reset_signals(p.signals);
        for (fd, target) in p.stdio.iter().zip(0..) {
            if libc::dup2(*fd, target) < 0 {
                return errno();
            }
        }
        match crate::exec::write_oom_score() {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                p.oom_deferred.store(true, Ordering::SeqCst);
            }
            Err(e) => return e.raw_os_error().unwrap_or(libc::EINVAL),
            Ok(()) => {}
        }
        let leader = if p.tty {
            libc::setsid() >= 0 && libc::ioctl(0, libc::TIOCSCTTY, 0) >= 0
        } else {
            libc::setpgid(0, 0) == 0
        };
        // Raw set*id: glibc's wrappers would make every thread of the agent follow.
        if !leader
            || libc::chdir(p.workdir.as_ptr()) != 0
            || libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr()) != 0
            || libc::syscall(libc::SYS_setgid, p.gid) != 0
            || libc::syscall(libc::SYS_setuid, p.uid) != 0
        {
            return errno();
        }
        let empty = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        exec_search(p)
    }
}

/// The signals the child must set back to their defaults: those with a handler (the
/// handler is the agent's code, and the child runs in the agent's memory) and SIGPIPE (Rust
/// ignores it, commands expect it); other ignored ones stay ignored, as across any exec.
/// The agent sets its dispositions at start-up only, so they are read once, in the parent.
fn signals_to_reset() -> &'static [c_int] {
    static SIGNALS: std::sync::OnceLock<Vec<c_int>> = std::sync::OnceLock::new();
    SIGNALS.get_or_init(|| {
        (1..65)
            .filter(|&sig| {
                // SAFETY: sigaction only reads the disposition into a zeroed local; an error
                // (SIGKILL, SIGSTOP, glibc's internal signals) leaves the signal out.
                unsafe {
                    let mut old = std::mem::zeroed::<libc::sigaction>();
                    libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                        && old.sa_sigaction != libc::SIG_DFL
                        && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                }
            })
            .collect()
    })
}

/// Set [`signals_to_reset`] (read before the clone) back to their defaults.
///
/// # Safety
/// Only in the child, before its signals are unblocked.
unsafe fn reset_signals(signals: &[c_int]) {
    for &sig in signals {
        // SAFETY: sigaction from a zeroed local whose handler is SIG_DFL.
        unsafe {
            let mut dfl = std::mem::zeroed::<libc::sigaction>();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

/// execvp over the prepared candidates: go on past a missing one, remember a forbidden one,
/// run a file of no executable format with /bin/sh, stop at any other error.
///
/// # Safety
/// Only in the child; the pointers of `p` are NULL-terminated arrays of live C strings.
unsafe fn exec_search(p: &Prepared) -> c_int {
    let mut denied = false;
    let mut last = libc::ENOENT;
    for c in &p.candidates {
        // SAFETY: the caller's contract. sh_argv's slot 1 is written only here, while the
        // caller sleeps, and is never read by the agent.
        unsafe {
            libc::execve(c.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
            last = errno();
            if last == libc::ENOEXEC {
                let sh_argv = p.sh_argv.as_ptr().cast_mut();
                *sh_argv.add(1) = c.as_ptr();
                libc::execve(*sh_argv, sh_argv, p.envp.as_ptr());
                return errno();
            }
        }
        match last {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => return last,
        }
    }
    if denied { libc::EACCES } else { last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_follows_execvp() {
        assert_eq!(search("/bin/ls", "/x"), ["/bin/ls"]);
        assert_eq!(search("./run", "/x"), ["./run"]);
        assert_eq!(search("ls", "/a:/b/:"), ["/a/ls", "/b/ls", "ls"]);
    }

    fn me() -> User {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let groups = if uid == 0 { vec![] } else { vec![gid] };
        User {
            name: "me".into(),
            uid,
            gid,
            home: "/".into(),
            shell: "/bin/sh".into(),
            groups,
        }
    }

    fn run(argv: &[&str], env: &[(&str, &str)]) -> std::io::Result<(i32, String)> {
        use std::io::Read;
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let user = me();
        let plan = Plan {
            argv: &argv,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            user: &user,
            workdir: "/tmp",
        };
        let mut child = spawn(&plan, Stdio::Piped, |_| {})?;
        drop(child.stdin.take());
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out)?;
        let status =
            rustix::process::waitpid(Some(child.pid), rustix::process::WaitOptions::empty())?;
        let code = status.and_then(|(_, s)| s.exit_status()).unwrap_or(-1);
        Ok((code, out))
    }

    #[test]
    fn runs_with_exactly_its_environment_directory_and_own_group() {
        let (code, out) = run(
            &[
                "sh",
                "-c",
                "echo $A:$PWD:$$:$(ps -o pgid= -p $$ 2>/dev/null || echo -); exit 3",
            ],
            &[("PATH", "/usr/bin:/bin"), ("A", "a")],
        )
        .unwrap();
        assert_eq!(code, 3);
        let f: Vec<&str> = out.trim().split(':').collect();
        assert_eq!(&f[..2], ["a", "/tmp"], "{out}");
        if f[3] != "-" {
            assert_eq!(f[2], f[3].trim(), "a process group of its own: {out}");
        }
    }

    #[test]
    fn a_missing_or_forbidden_command_is_an_error_and_a_script_runs_with_sh() {
        let e = run(&["no-such-command-xyz"], &[("PATH", "/bin")])
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "echo never\n").unwrap();
        let e = run(&[plain.to_str().unwrap()], &[]).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let script = dir.path().join("s");
        std::fs::write(&script, "echo from-sh\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (code, out) = run(&[script.to_str().unwrap()], &[]).unwrap();
        assert_eq!((code, out.as_str()), (0, "from-sh\n"));
    }

    #[test]
    fn the_command_starts_with_sigpipe_at_its_default_and_nothing_blocked() {
        // This process ignores SIGPIPE (Rust does at start-up); its commands must not. The
        // command reads its own status: a shell's would show what the shell itself blocks
        // while it waits for its child.
        let (code, out) = run(
            &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
            &[("PATH", "/usr/bin:/bin")],
        )
        .unwrap();
        assert_eq!(code, 0);
        for line in out.lines() {
            let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
            assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{line}");
            if line.starts_with("SigBlk") {
                assert_eq!(mask, 0, "{line}");
            }
        }
    }

    #[test]
    fn an_argument_with_a_nul_is_refused_before_any_process() {
        let e = run(&["sh", "a\0b"], &[]).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
