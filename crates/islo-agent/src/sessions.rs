//! Terminal sessions held by the agent: a process on a pseudo-terminal that outlives every
//! connection (and islod), with a scrollback ring replayed to whoever attaches next.
//!
//! Named sessions live in a registry until killed; a dead one stays listed (status `dead`)
//! until it is recreated or killed. An exec with `tty` is an unnamed session owned by its one
//! connection: when that connection goes, its process group is killed.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use islo_agent::proto::{self, AgentError, ErrorKind, FrameKind, ProtoError};
use islo_agent::{AttachRequest, ExecRequest, ExitStatus, SessionInfo, SessionSpec, TtySize};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::conn::{Out, drain};
use crate::{exec, pty, reaper, users};

/// Bytes of recent output kept per session for replay.
pub const SCROLLBACK: usize = 2 << 20;
const DEFAULT_SIZE: TtySize = TtySize { rows: 24, cols: 80 };

struct Inner {
    ring: VecDeque<u8>,
    clients: Vec<(u64, Arc<Out>)>,
    exit: Option<ExitStatus>,
}

/// One process on a terminal.
pub struct Session {
    name: String,
    started_ms: u64,
    pgid: Pid,
    controller: OwnedFd,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Session>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Session>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Session {
    fn info(&self, created: bool) -> SessionInfo {
        let inner = lock(&self.inner);
        let status = match (&inner.exit, inner.clients.len()) {
            (Some(_), _) => "dead",
            (None, 0) => "disconnected",
            (None, _) => "connected",
        };
        SessionInfo {
            name: self.name.clone(),
            status: status.into(),
            started_at_unix_ms: self.started_ms,
            clients: inner.clients.len() as u32,
            created,
            replay_bytes: 0,
        }
    }

    fn alive(&self) -> bool {
        lock(&self.inner).exit.is_none()
    }
}

/// The user's login shell: theirs if it exists, else bash, else sh.
fn login_shell(user: &users::User) -> Vec<String> {
    let shell = [user.shell.as_str(), "/bin/bash", "/bin/sh"]
        .into_iter()
        .find(|s| !s.is_empty() && std::path::Path::new(s).exists())
        .unwrap_or("/bin/sh");
    vec![shell.to_string(), "-l".to_string()]
}

/// Why a session did not start.
enum SpawnError {
    /// Nothing was run: the user, the workdir or the terminal is unusable.
    Refused(String),
    /// The command itself could not be run (not found, not executable).
    Command(String, std::io::Error),
}

impl SpawnError {
    fn into_agent_error(self) -> AgentError {
        let message = match self {
            Self::Refused(m) => m,
            Self::Command(argv0, e) => format!("{argv0}: {e}"),
        };
        AgentError::new(ErrorKind::CannotStart, message)
    }
}

/// Start `spec` on a new terminal of `size`.
fn spawn(name: &str, spec: &SessionSpec, size: TtySize) -> Result<Arc<Session>, SpawnError> {
    let user = exec::run_as(&spec.user, &spec.workdir).map_err(SpawnError::Refused)?;
    let argv = if spec.argv.is_empty() {
        login_shell(&user)
    } else {
        spec.argv.clone()
    };
    let refused = |what: &str, e: std::io::Error| SpawnError::Refused(format!("{what}: {e}"));
    let (controller, sub) = pty::open(size).map_err(|e| refused("opening a terminal", e))?;
    let _ = rustix::fs::fchown(&sub, Some(rustix::fs::Uid::from_raw(user.uid)), None);
    let plan = exec::plan(&argv, &spec.env, &user, &spec.workdir);
    let spawn = |started: &mut dyn FnMut(Pid)| {
        crate::spawn::spawn(&plan, crate::spawn::Stdio::Terminal(&sub), started)
    };
    let (child, exited) = reaper::spawn_registered(spawn).map_err(|e| {
        if crate::conn::at_process_limit(&e) {
            SpawnError::Refused(crate::conn::PROCESS_LIMIT.into())
        } else {
            SpawnError::Command(argv[0].clone(), e)
        }
    })?;
    drop(sub);
    let reader = controller
        .try_clone()
        .map_err(|e| refused("the terminal", e))?;
    let session = Arc::new(Session {
        name: name.to_string(),
        started_ms: now_ms(),
        pgid: child.pid,
        controller,
        inner: Mutex::new(Inner {
            ring: VecDeque::new(),
            clients: Vec::new(),
            exit: None,
        }),
    });
    let progress = Arc::new(AtomicU64::new(0));
    let (eof_tx, eof_rx) = channel();
    let (s, p) = (session.clone(), progress.clone());
    let reading = crate::conn::thread(move || read_output(&s, reader, &p, &eof_tx));
    let s = session.clone();
    let watching = reading
        .and_then(|()| crate::conn::thread(move || watch_exit(&s, &exited, &eof_rx, &progress)));
    if let Err(e) = watching {
        // Half wired: the process goes (the reaper collects it).
        let _ = kill_process_group(session.pgid, Signal::KILL);
        return Err(SpawnError::Refused(crate::conn::not_started(
            "a thread for the terminal",
            &e,
        )));
    }
    Ok(session)
}

/// Wait for the session's process to exit, then tell every client once its output drained.
fn watch_exit(
    s: &Session,
    exited: &std::sync::mpsc::Receiver<ExitStatus>,
    eof_rx: &std::sync::mpsc::Receiver<()>,
    progress: &AtomicU64,
) {
    {
        let status = exited.recv().unwrap_or(ExitStatus {
            code: 255,
            signal: None,
        });
        drain(1, eof_rx, progress);
        let payload = serde_json::to_vec(&status).unwrap_or_default();
        let mut inner = lock(&s.inner);
        inner.exit = Some(status);
        for (_, out) in inner.clients.drain(..) {
            out.finish(FrameKind::Exit, &payload);
        }
    }
}

/// Copy terminal output into the ring and to every client, until the terminal closes.
fn read_output(s: &Session, reader: OwnedFd, progress: &AtomicU64, eof: &Sender<()>) {
    let mut file = std::fs::File::from(reader);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once every holder of the terminal is gone
            Ok(n) => n,
        };
        progress.fetch_add(n as u64, Ordering::SeqCst);
        let mut inner = lock(&s.inner);
        inner.ring.extend(&buf[..n]);
        let excess = inner.ring.len().saturating_sub(SCROLLBACK);
        inner.ring.drain(..excess);
        inner
            .clients
            .retain(|(_, out)| out.send(FrameKind::Stdout, &buf[..n]));
    }
    let _ = eof.send(());
}

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// Serve one client of `s` on `stream` until it leaves. `owner`: the client owns the session
/// (a tty exec), which dies with it.
/// `created`: answer with a `Reply` first (named sessions), telling whether this attach made it.
fn join(
    s: &Arc<Session>,
    stream: UnixStream,
    created: Option<bool>,
    owner: bool,
) -> Result<(), ProtoError> {
    let out = Arc::new(Out::new(stream.try_clone()?));
    let id = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
    {
        // Under the lock: no output can slip between the replay and the live stream.
        let mut inner = lock(&s.inner);
        if let Some(created) = created {
            let info = SessionInfo {
                name: s.name.clone(),
                status: if inner.exit.is_some() {
                    "dead"
                } else {
                    "connected"
                }
                .into(),
                started_at_unix_ms: s.started_ms,
                clients: inner.clients.len() as u32 + 1,
                created,
                replay_bytes: inner.ring.len() as u64,
            };
            out.send(
                FrameKind::Reply,
                &serde_json::to_vec(&info).unwrap_or_default(),
            );
        }
        let (a, b) = inner.ring.as_slices();
        for chunk in a.chunks(64 * 1024).chain(b.chunks(64 * 1024)) {
            out.send(FrameKind::Stdout, chunk);
        }
        // Ended already (a dead session, or a terminal exec quicker than this join): what
        // it printed was just replayed; its end follows.
        if let Some(st) = inner.exit {
            out.finish(
                FrameKind::Exit,
                &serde_json::to_vec(&st).unwrap_or_default(),
            );
            return Ok(());
        }
        inner.clients.push((id, out.clone()));
    }
    forward_input(s, stream);
    lock(&s.inner).clients.retain(|(c, _)| *c != id);
    if owner && s.alive() && !crate::pause::detaching() {
        let _ = kill_process_group(s.pgid, Signal::KILL);
    }
    Ok(())
}

/// Client frames to the terminal: input, resizes and signals; returns when the client leaves.
fn forward_input(s: &Session, mut stream: UnixStream) {
    while let Ok(Some(f)) = proto::read_frame(&mut stream) {
        match f.kind {
            FrameKind::Stdin => {
                let mut data = &f.payload[..];
                while !data.is_empty() {
                    match rustix::io::write(&s.controller, data) {
                        Ok(n) => data = &data[n..],
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => break,
                    }
                }
            }
            FrameKind::Resize => {
                if let Ok(size) = proto::decode::<TtySize>(&f.payload, "size") {
                    let _ = pty::resize(&s.controller, size);
                }
            }
            FrameKind::Signal => {
                if let Some(sig) = f
                    .payload
                    .first()
                    .and_then(|b| Signal::from_named_raw(i32::from(*b)))
                {
                    let _ = kill_process_group(s.pgid, sig);
                }
            }
            _ => {}
        }
    }
}

/// `Attach`: join a named session, creating it when missing or dead and `create` is given.
pub fn attach(mut stream: UnixStream, req: AttachRequest) -> Result<(), ProtoError> {
    let size = req.size.unwrap_or(DEFAULT_SIZE);
    let found = {
        let mut reg = lock(registry());
        match reg.get(&req.session) {
            Some(s) if s.alive() => Ok((s.clone(), false)),
            // A dead session without `create`: its last output and how it ended.
            Some(s) if req.create.is_none() => Ok((s.clone(), false)),
            _ => match &req.create {
                None => Err(AgentError::new(
                    ErrorKind::NotFound,
                    format!("session {:?} does not exist", req.session),
                )),
                Some(spec) => spawn(&req.session, spec, size)
                    .map(|s| {
                        reg.insert(req.session.clone(), s.clone());
                        (s, true)
                    })
                    .map_err(SpawnError::into_agent_error),
            },
        }
    };
    let (session, created) = match found {
        Ok(x) => x,
        Err(e) => return proto::write_frame(&mut stream, FrameKind::Error, &e.encode()),
    };
    if !created && req.size.is_some() {
        let _ = pty::resize(&session.controller, size);
    }
    join(&session, stream, Some(created), false)
}

/// An exec with `tty`: an unnamed session that lives as long as this connection.
pub fn exec_tty(stream: UnixStream, req: ExecRequest) -> Result<(), ProtoError> {
    let spec = SessionSpec {
        argv: req.argv.clone(),
        env: req.env.clone(),
        user: req.user.clone(),
        workdir: req.workdir.clone(),
    };
    match spawn("", &spec, req.tty.unwrap_or(DEFAULT_SIZE)) {
        Ok(s) => join(&s, stream, None, true),
        Err(SpawnError::Command(argv0, e)) => {
            exec::refuse_spawn(&Out::new(stream), &argv0, &e);
            Ok(())
        }
        Err(SpawnError::Refused(m)) => {
            let e = AgentError::new(ErrorKind::CannotStart, m);
            Out::new(stream).finish(FrameKind::Error, &e.encode());
            Ok(())
        }
    }
}

/// Every named session.
pub fn list() -> Vec<SessionInfo> {
    let reg = lock(registry());
    let mut v: Vec<SessionInfo> = reg.values().map(|s| s.info(false)).collect();
    v.sort_by(|a, b| {
        a.started_at_unix_ms
            .cmp(&b.started_at_unix_ms)
            .then(a.name.cmp(&b.name))
    });
    v
}

/// End a named session: hang up its process group, then kill it.
pub fn kill(name: &str) -> Result<(), String> {
    let s = lock(registry())
        .remove(name)
        .ok_or_else(|| format!("session {name:?} does not exist"))?;
    if s.alive() {
        let _ = kill_process_group(s.pgid, Signal::HUP);
        let _ = kill_process_group(s.pgid, Signal::KILL);
    }
    Ok(())
}
