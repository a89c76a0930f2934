//! The agent's side of one connection: a writer that several threads share and that closes
//! after the final frame, and the wait for output still draining after a process exits.

use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use islo_agent::proto::{self, FrameKind};

/// Why nothing could start when the sandbox's pids cgroup is full (threads count too).
pub const PROCESS_LIMIT: &str = "the sandbox has reached its process limit (its pids cgroup \
    is full): end some of its processes, or stop and start it again";

/// Whether `e` is the pids cgroup (or `RLIMIT_NPROC`) refusing a new process or thread.
pub fn at_process_limit(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::AGAIN.raw_os_error())
}

/// The agent's threads copy bytes and parse small requests: a small stack each. (Hundreds run
/// at once under load, and glibc keeps up to 40 MiB of stacks for reuse: at the 2 MiB default
/// it kept 20 and unmapped the rest at every exit.)
const THREAD_STACK: usize = 256 * 1024;

/// Run `f` on a thread of its own; an error (the process limit, most likely) instead of the
/// panic `std::thread::spawn` would give.
pub fn thread(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Why a thread or command could not start, as the client is told.
pub fn not_started(what: &str, e: &std::io::Error) -> String {
    if at_process_limit(e) {
        PROCESS_LIMIT.to_string()
    } else {
        format!("{what}: {e}")
    }
}

/// After a process exits, output still arriving is forwarded until its sources close or stay
/// quiet this long (a background process may hold them open for ever).
pub const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// The connection's write half, closed once the exit frame is sent.
pub struct Out {
    stream: Mutex<(UnixStream, bool)>,
}

impl Out {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream: Mutex::new((stream, false)),
        }
    }

    pub fn send(&self, kind: FrameKind, payload: &[u8]) -> bool {
        let mut g = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 {
            return false;
        }
        proto::write_frame(&mut g.0, kind, payload).is_ok()
    }

    pub fn finish(&self, kind: FrameKind, payload: &[u8]) {
        let mut g = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if !g.1 {
            let _ = proto::write_frame(&mut g.0, kind, payload);
            g.1 = true;
            let _ = g.0.shutdown(std::net::Shutdown::Write);
        }
    }
}

/// Wait for the output pumps to finish, or for output to stay quiet for [`DRAIN_QUIET`].
pub fn drain(pumps: usize, done: &Receiver<()>, progress: &AtomicU64) {
    let mut left = pumps;
    let mut seen = progress.load(Ordering::SeqCst);
    while left > 0 {
        match done.recv_timeout(DRAIN_QUIET) {
            Ok(()) => left -= 1,
            Err(RecvTimeoutError::Timeout) => {
                let now = progress.load(Ordering::SeqCst);
                if now == seen {
                    return;
                }
                seen = now;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
