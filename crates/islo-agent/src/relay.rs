//! An exec's streams on its connection: the command's stdout and stderr out as frames, the
//! client's frames (stdin, end of stdin, signals) in, then the exit status.
//!
//! One thread does it all with poll(2) until the client sends input: writing to the command
//! may block (it need not read), and output must keep flowing meanwhile, so from the first
//! stdin frame on a thread of its own forwards the client's frames. A pipe exec from islod
//! (input closed at once) thus costs the agent one thread, not four: under load each thread
//! cost more than the command (stacks mapped and unmapped under the agent's memory lock).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use islo_agent::proto::{self, ExitStatus, FrameKind};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::conn::{DRAIN_QUIET, Out};

/// The client's side of the connection, while the relay reads it.
pub struct Input {
    conn: Option<UnixStream>,
    stdin: Option<File>,
    /// Set once the command has exited: from then on a client going away kills nothing (its
    /// background processes stay).
    exited: Arc<AtomicBool>,
}

impl Input {
    pub fn new(conn: UnixStream, stdin: Option<File>) -> Self {
        Self {
            conn: Some(conn),
            stdin,
            exited: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Relay until the command has exited and its output closed, or stayed quiet for
/// [`DRAIN_QUIET`] after it exited (a background process may hold it open for ever); then
/// its exit status. A client that goes away before the command exits takes the command's
/// process group with it.
pub fn relay(
    out: &Out,
    outputs: [(Option<File>, FrameKind); 2],
    exited: &Receiver<ExitStatus>,
    mut input: Input,
    pgid: Pid,
    pidfd: &OwnedFd,
) -> ExitStatus {
    let mut open: Vec<(File, FrameKind)> = outputs
        .into_iter()
        .filter_map(|(f, kind)| f.map(|f| (f, kind)))
        .collect();
    let mut status = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if status.is_none() {
            status = exited.try_recv().ok();
            input.exited.store(status.is_some(), Ordering::SeqCst);
        }
        if open.is_empty() && (status.is_some() || input.conn.is_none()) {
            break;
        }
        // Until it exits, its pidfd wakes the poll (the status follows from the reaper);
        // after, output that stays quiet ends the wait.
        let watch = status.is_none().then_some(pidfd);
        let wait = status.is_some().then(|| timespec(DRAIN_QUIET));
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .map(|(f, _)| PollFd::new(f, PollFlags::IN))
            .chain(watch.map(|p| PollFd::new(p, PollFlags::IN)))
            .chain(input.conn.iter().map(|c| PollFd::new(c, PollFlags::IN)))
            .collect();
        match rustix::event::poll(&mut fds, wait.as_ref()) {
            Ok(0) if status.is_some() => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
        let mut ready = fds
            .iter()
            .map(|p| !p.revents().is_empty())
            .collect::<Vec<_>>();
        drop(fds);
        let client = input.conn.is_some() && ready.pop().unwrap_or(false);
        if watch.is_some() && ready.pop().unwrap_or(false) {
            status = exited.recv().ok();
            input.exited.store(true, Ordering::SeqCst);
        }
        let mut ready = ready.into_iter();
        open.retain_mut(|(src, kind)| {
            !ready.next().unwrap_or(false) || forward_output(src, *kind, out, &mut buf)
        });
        if client {
            take_frame(&mut input, pgid, status.is_some());
        }
    }
    let status = status.or_else(|| exited.recv().ok()).unwrap_or(ExitStatus {
        code: 255,
        signal: None,
    });
    input.exited.store(true, Ordering::SeqCst);
    status
}

/// Where the kernel makes no pidfd (gVisor): a thread waits for the reaper's status and
/// passes it on, then closes a pipe whose read end (the returned descriptor) wakes the relay's
/// poll as the pidfd would.
pub fn exit_pipe(exited: Receiver<ExitStatus>) -> std::io::Result<(Receiver<ExitStatus>, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("exit-wait".into())
        .spawn(move || {
            if let Ok(s) = exited.recv() {
                let _ = tx.send(s);
            }
            drop(w);
        })?;
    Ok((rx, r))
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// One read of a ready output, sent on; false once it closed (or the client went away).
fn forward_output(src: &mut File, kind: FrameKind, out: &Out, buf: &mut [u8]) -> bool {
    match src.read(buf) {
        Ok(0) => false,
        Ok(n) => out.send(kind, &buf[..n]),
        Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
    }
}

/// Handle the client's next frame. The first stdin data hands the connection to a thread
/// of its own ([`forward_input`]); the relay then stops reading it.
fn take_frame(input: &mut Input, pgid: Pid, exited: bool) {
    let Some(conn) = input.conn.as_mut() else {
        return;
    };
    match proto::read_frame(conn) {
        Ok(Some(f)) => match f.kind {
            FrameKind::Stdin => {
                if input.stdin.is_none() {
                    return; // input after its end: nothing takes it
                }
                let (Some(conn), Some(stdin)) = (input.conn.take(), input.stdin.take()) else {
                    return;
                };
                let exited = input.exited.clone();
                let forwarding = crate::conn::thread(move || {
                    forward_input(conn, stdin, f.payload, pgid, &exited);
                });
                if forwarding.is_err() {
                    // No thread (the process limit): the command cannot get its input.
                    let _ = kill_process_group(pgid, Signal::KILL);
                }
            }
            FrameKind::StdinEof => input.stdin = None,
            FrameKind::Signal => signal(&f.payload, pgid),
            _ => {}
        },
        Ok(None) | Err(_) => {
            input.conn = None;
            if !exited && !crate::pause::detaching() {
                let _ = kill_process_group(pgid, Signal::KILL);
            }
        }
    }
}

fn signal(payload: &[u8], pgid: Pid) {
    let sig = payload
        .first()
        .and_then(|s| Signal::from_named_raw(i32::from(*s)));
    if let Some(sig) = sig {
        let _ = kill_process_group(pgid, sig);
    }
}

/// The client's frames once it sent input, from `first` on, until it goes away.
fn forward_input(
    mut conn: UnixStream,
    stdin: File,
    first: Vec<u8>,
    pgid: Pid,
    exited: &AtomicBool,
) {
    let mut stdin = Some(stdin);
    let write = |stdin: &mut Option<File>, data: &[u8]| {
        if let Some(s) = stdin.as_mut()
            && s.write_all(data).is_err()
        {
            *stdin = None;
        }
    };
    write(&mut stdin, &first);
    loop {
        match proto::read_frame(&mut conn) {
            Ok(Some(f)) => match f.kind {
                FrameKind::Stdin => write(&mut stdin, &f.payload),
                FrameKind::StdinEof => stdin = None,
                FrameKind::Signal => signal(&f.payload, pgid),
                _ => {}
            },
            Ok(None) | Err(_) => {
                if !exited.load(Ordering::SeqCst) && !crate::pause::detaching() {
                    let _ = kill_process_group(pgid, Signal::KILL);
                }
                return;
            }
        }
    }
}
