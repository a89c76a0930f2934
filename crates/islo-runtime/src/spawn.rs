//! Running a helper with a descriptor of islod as its descriptor 3, without forking islod.
//!
//! `Command::pre_exec` (the only way std maps a descriptor beyond stdio) forces a fork(2),
//! which copies islod's page tables and stops its threads for it, under every concurrent
//! create. posix_spawn(3) maps the descriptor itself (a file action) and starts the helper
//! vfork-style, sharing islod's memory until it execs.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Run `program` with `args` to completion: stdin empty, stdout and stderr to `log`, and
/// `pass` (if any) as its descriptor 3. Whether it exited 0.
pub fn run_with_fd3(
    program: &Path,
    args: &[OsString],
    log: &File,
    pass: Option<BorrowedFd<'_>>,
) -> std::io::Result<bool> {
    let c = |b: &[u8]| {
        CString::new(b).map_err(|_| std::io::Error::other("a NUL byte in a helper's argument"))
    };
    let path = c(program.as_os_str().as_bytes())?;
    let mut strings = vec![path.clone()];
    for a in args {
        strings.push(c(a.as_bytes())?);
    }
    let env = std::env::vars_os()
        .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<std::io::Result<Vec<_>>>()?;
    // Every source descriptor above 3, so dup2 always copies (and so clears close-on-exec).
    let high = |fd: BorrowedFd<'_>| -> std::io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(fd, 4)?)
    };
    let devnull = File::open("/dev/null")?;
    let mut sources = vec![
        high(devnull.as_fd())?,
        high(log.as_fd())?,
        high(log.as_fd())?,
    ];
    if let Some(fd) = pass {
        sources.push(high(fd)?);
    }
    let pid = spawn(&path, &strings, &env, &sources)?;
    drop(sources);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status into a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// posix_spawn `path` with `argv` and `envp`, `sources[i]` as its descriptor i.
fn spawn(
    path: &CString,
    argv: &[CString],
    envp: &[CString],
    sources: &[OwnedFd],
) -> std::io::Result<libc::pid_t> {
    let ptrs = |v: &[CString]| -> Vec<*mut libc::c_char> {
        v.iter()
            .map(|s| s.as_ptr().cast_mut())
            .chain([std::ptr::null_mut()])
            .collect()
    };
    let (argv, envp) = (ptrs(argv), ptrs(envp));
    let check = |rc: libc::c_int| match rc {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    };
    let mut pid = 0;
    // SAFETY: the file actions are initialised before use and destroyed on every path after
    // it; argv and envp are NULL-terminated arrays of pointers into CStrings that outlive the
    // call, which does not write through them; every source descriptor is open (owned here).
    unsafe {
        let mut actions = std::mem::zeroed::<libc::posix_spawn_file_actions_t>();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        let mut result = Ok(());
        for (target, fd) in sources.iter().enumerate() {
            let target = libc::c_int::try_from(target).unwrap_or(libc::c_int::MAX);
            result = result.and_then(|()| {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    fd.as_raw_fd(),
                    target,
                ))
            });
        }
        let result = result.and_then(|()| {
            check(libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                std::ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            ))
        });
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result.map(|()| pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_gets_the_descriptor_as_3_and_writes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log");
        let log = File::create(&log_path).unwrap();
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let args: Vec<OsString> = [
            "-c",
            "echo out; echo err >&2; echo three >&3; read x || true",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let ok = run_with_fd3(Path::new("/bin/sh"), &args, &log, Some(w.as_fd())).unwrap();
        assert!(ok);
        drop(w);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut File::from(r), &mut got).unwrap();
        assert_eq!(got, "three\n");
        assert_eq!(std::fs::read_to_string(&log_path).unwrap(), "out\nerr\n");
        let failed = run_with_fd3(
            Path::new("/bin/sh"),
            &["-c".into(), "exit 3".into()],
            &log,
            None,
        );
        assert!(!failed.unwrap());
        let missing = run_with_fd3(Path::new("/no/such/helper"), &[], &log, None);
        let e = missing.expect_err("a missing helper is an error, not an exit status");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
