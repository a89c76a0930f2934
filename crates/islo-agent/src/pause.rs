//! Making the agent checkpointable (a sandbox's pause, see `AgentRequest::Quiesce`).
//!
//! A checkpoint (CRIU) can save a socket only if it lives in the sandbox's own network
//! namespace and has no peer outside the sandbox. So before a pause every client connection
//! is shut down (commands and sessions go on: a client going away during a pause kills
//! nothing), and the listening socket the runtime handed over, bound on the host, is replaced
//! by one the agent binds inside the sandbox. islod then finds the agent at that path.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the connections may take to close once shut down.
const DRAIN: Duration = Duration::from_secs(2);

/// Set by a quiesce until the next connection is accepted (the first after the restore, or
/// after a pause that failed): connections closing meanwhile were closed for the pause.
static DETACHING: AtomicBool = AtomicBool::new(false);
/// The listening socket the accept loop blocks on (shut down to wake it).
static LISTENING: AtomicI32 = AtomicI32::new(-1);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static CONNS: Mutex<Option<HashMap<u64, UnixStream>>> = Mutex::new(None);
static REPLACEMENT: Mutex<Option<UnixListener>> = Mutex::new(None);

fn conns() -> MutexGuard<'static, Option<HashMap<u64, UnixStream>>> {
    CONNS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a client that went away did so because of a pause: its command must live on.
pub fn detaching() -> bool {
    DETACHING.load(Ordering::SeqCst)
}

/// A client connection known to the pause; forgotten when dropped.
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(m) = conns().as_mut() {
            m.remove(&self.0);
        }
    }
}

/// Note a newly accepted connection (a copy of it, to shut it down at a pause).
pub fn register(stream: &UnixStream) -> Registered {
    DETACHING.store(false, Ordering::SeqCst);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(copy) = stream.try_clone() {
        conns().get_or_insert_with(HashMap::new).insert(id, copy);
    }
    Registered(id)
}

/// The accept loop's listener is `l`.
pub fn listening(l: &UnixListener) {
    LISTENING.store(l.as_raw_fd(), Ordering::SeqCst);
}

/// After `accept` failed or returned: the listener to use from now on, if a quiesce replaced it.
pub fn replacement() -> Option<UnixListener> {
    REPLACEMENT.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Close every connection but `own`, then listen at `socket` instead of the handed socket.
pub fn quiesce(own: &Registered, socket: &Path) -> Result<(), String> {
    DETACHING.store(true, Ordering::SeqCst);
    for (id, c) in conns().iter().flatten() {
        if *id != own.0 {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
    let deadline = Instant::now() + DRAIN;
    while conns().iter().flatten().any(|(id, _)| *id != own.0) {
        if Instant::now() >= deadline {
            return Err("connections to the agent did not close".to_string());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let listener = bind(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    replace_listener(listener).map_err(|e| format!("closing the handed socket: {e}"))?;
    // CRIU enters the sandbox's namespaces as its root, through the agent's /proc files: they
    // must be the sandbox root's until the dump ends the agent (a restored agent's memory
    // belongs to the host's user namespace, so only the dumpable flag makes them so). Taken
    // back by `take_listener`.
    dumpable(true)
}

/// PID 1 alone (the agent also runs outside a sandbox in tests) is made dumpable or not.
fn dumpable(yes: bool) -> Result<(), String> {
    use rustix::process::DumpableBehavior::{Dumpable, NotDumpable};
    if std::process::id() != 1 {
        return Ok(());
    }
    rustix::process::set_dumpable_behavior(if yes { Dumpable } else { NotDumpable })
        .map_err(|e| format!("setting the agent's dumpable flag: {e}"))
}

/// Make the accept loop listen on `listener` instead: it is woken by a shutdown of the one it
/// blocks on. Returns once it listens there and the old one is closed (a checkpoint must not
/// find it open).
fn replace_listener(listener: UnixListener) -> rustix::io::Result<()> {
    let old: RawFd = LISTENING.load(Ordering::SeqCst);
    let new = listener.as_raw_fd();
    *REPLACEMENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    if old < 0 {
        return Ok(());
    }
    // SAFETY: `old` is the accept loop's listener, open until the loop takes the
    // replacement, which it does only after this shutdown wakes it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(old) };
    rustix::net::shutdown(fd.as_fd(), rustix::net::Shutdown::Both)?;
    // The loop drops the old listener, then records the new one.
    let deadline = Instant::now() + DRAIN;
    while LISTENING.load(Ordering::SeqCst) != new && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Receive a listening socket over `conn` (one byte with `SCM_RIGHTS`) and listen there
/// from now on; the socket a quiesce bound is removed.
pub fn take_listener(conn: &UnixStream) -> Result<(), String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        conn,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the socket: {e}"))?;
    let fd = control
        .drain()
        .find_map(|m| match m {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .ok_or("no socket came with the message")?;
    dumpable(false)?;
    replace_listener(UnixListener::from(fd)).map_err(|e| format!("closing the old socket: {e}"))?;
    let _ = std::fs::remove_file(
        Path::new(islo_agent::RUN_DIR_IN_SANDBOX).join(islo_agent::SOCKET_NAME),
    );
    Ok(())
}

/// A socket bound at `path` for islod alone (a stale one from an earlier pause replaced).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        // gVisor's gofer binds host sockets (`--host-uds=create`) but refuses to change their
        // mode; the run directory (0700, root's) already keeps everyone else out.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => other?,
    }
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC)?;
    Ok(listener)
}
