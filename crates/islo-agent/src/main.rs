//! `islo-agent`: PID 1 of every sandbox.
//!
//! It prepares the sandbox's user and directories, reaps every orphan, and serves islod on a
//! unix socket: the listening descriptor the runtime hands it (`ISLO_AGENT_LISTEN_FD`, bound
//! on the host), else `islo-agent [SOCKET]`, default `/.islo/run/agent.sock`: one request per
//! connection, see `islo_agent::proto`. It uses plain threads: it must stay small and start in
//! a millisecond in any image (glibc, musl, busybox or none), so it is linked statically.

mod conn;
mod exec;
mod forward;
mod pause;
mod prepare;
mod pty;
mod reaper;
mod relay;
mod sessions;
mod spawn;
mod users;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use islo_agent::proto::{self, AgentRequest, FrameKind, PROTOCOL_VERSION};

fn main() {
    let socket = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(islo_agent::RUN_DIR_IN_SANDBOX).join(islo_agent::SOCKET_NAME)
        });
    // Only PID 1 of a sandbox prepares its root: the agent also runs outside one in tests.
    if std::process::id() == 1 {
        // Not dumpable: the sandbox's processes, root included (it lacks CAP_SYS_PTRACE),
        // can neither ptrace the agent nor read its memory, environment or descriptors
        // through /proc. Commands are dumpable again once they exec.
        if let Err(e) =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        {
            eprintln!("islo-agent: making the agent undumpable: {e}");
        }
        prepare::start();
    } else {
        prepare::skip();
    }
    reaper::start();
    if let Err(e) = serve(&socket) {
        eprintln!("islo-agent: {}: {e}", socket.display());
        std::process::exit(1);
    }
}

/// The socket islod reaches the agent on: the one the runtime handed over (bound on the
/// host, so nothing in the sandbox can replace it), else one bound at `socket`.
fn listen(socket: &std::path::Path) -> std::io::Result<UnixListener> {
    let handed = std::env::var(islo_agent::LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok());
    if let Some(fd) = handed {
        // SAFETY: the runtime passed this descriptor to PID 1 (`--preserve-fds`) for the agent
        // alone; nothing else in this process owns or closes it.
        let listener = unsafe { <UnixListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // Commands must not inherit it.
        rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC)?;
        move_log(&std::path::Path::new(islo_agent::RUN_DIR_IN_SANDBOX).join("agent.log"))?;
        return Ok(listener);
    }
    let listener = pause::bind(socket)?;
    // A sandbox's PID 1 logs into its run directory (on the sandbox's own disk) wherever its
    // socket is (gVisor's is in a directory of the host's); elsewhere beside the socket.
    let run = std::path::Path::new(islo_agent::RUN_DIR_IN_SANDBOX);
    let dir = match std::process::id() == 1 && run.is_dir() {
        true => Some(run),
        false => socket.parent(),
    };
    if let Some(dir) = dir {
        move_log(&dir.join("agent.log"))?;
    }
    Ok(listener)
}

fn serve(socket: &std::path::Path) -> std::io::Result<()> {
    let mut listener = listen(socket)?;
    pause::listening(&listener);
    loop {
        let accepted = listener.accept();
        // A quiesce shut the listener down to wake this loop: listen where it said.
        if let Some(next) = pause::replacement() {
            listener = next;
            pause::listening(&listener);
        }
        match accepted {
            Ok((stream, _)) => dispatch(stream),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => eprintln!("islo-agent: accept: {e}"),
        }
    }
}

/// Serve one connection on a thread of its own.
fn dispatch(stream: UnixStream) {
    let reply = stream.try_clone();
    let served = conn::thread(move || {
        let registered = pause::register(&stream);
        if let Err(e) = handle(stream, &registered) {
            eprintln!("islo-agent: connection: {e}");
        }
    });
    // No thread (the sandbox's process limit): say so instead of hanging up.
    if let (Err(e), Ok(mut r)) = (served, reply) {
        let why = conn::not_started("a thread for the connection", &e);
        let _ = proto::write_error(&mut r, proto::ErrorKind::CannotStart, &why);
    }
}

/// From now on log into `path` (inside the sandbox, on its own disk): the runtime gave PID 1
/// a host file as stdout/stderr, which code in the sandbox could reach via `/proc/1/fd/1`.
fn move_log(path: &std::path::Path) -> std::io::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    rustix::stdio::dup2_stdout(&log)?;
    rustix::stdio::dup2_stderr(&log)?;
    Ok(())
}

fn handle(mut stream: UnixStream, me: &pause::Registered) -> Result<(), proto::ProtoError> {
    use proto::ErrorKind::BadRequest;
    let Some(frame) = proto::read_frame(&mut stream)? else {
        return Ok(());
    };
    if frame.kind != FrameKind::Request {
        return proto::write_error(&mut stream, BadRequest, "expected a request frame");
    }
    let req: AgentRequest = match proto::decode(&frame.payload, "request") {
        Ok(r) => r,
        Err(e) => {
            return proto::write_error(&mut stream, BadRequest, &e.to_string());
        }
    };
    if req.version() != PROTOCOL_VERSION {
        let e = proto::ProtoError::Version(req.version());
        return proto::write_error(&mut stream, BadRequest, &e.to_string());
    }
    if !matches!(req, AgentRequest::Ping { .. }) {
        prepare::wait();
    }
    match req {
        AgentRequest::Ping { .. } => proto::write_json(
            &mut stream,
            FrameKind::Pong,
            &serde_json::json!({ "version": PROTOCOL_VERSION }),
        ),
        AgentRequest::Exec(req) if req.tty.is_some() => sessions::exec_tty(stream, req),
        AgentRequest::Exec(req) => exec::run(stream, req),
        AgentRequest::Attach(req) => sessions::attach(stream, req),
        AgentRequest::ListSessions { .. } => {
            proto::write_json(&mut stream, FrameKind::Reply, &sessions::list())
        }
        AgentRequest::KillSession { session, .. } => match sessions::kill(&session) {
            Ok(()) => proto::write_json(&mut stream, FrameKind::Reply, &serde_json::json!({})),
            Err(m) => proto::write_error(&mut stream, proto::ErrorKind::NotFound, &m),
        },
        AgentRequest::ScanFiles(req) => match scan_files(&req) {
            Ok(reply) => proto::write_json(&mut stream, FrameKind::Reply, &reply),
            Err(m) => proto::write_error(&mut stream, proto::ErrorKind::Failed, &m),
        },
        AgentRequest::Listen { .. } => {
            proto::write_json(&mut stream, FrameKind::Reply, &serde_json::json!({}))?;
            match pause::take_listener(&stream) {
                Ok(()) => proto::write_json(&mut stream, FrameKind::Reply, &serde_json::json!({})),
                Err(m) => proto::write_error(&mut stream, proto::ErrorKind::Failed, &m),
            }
        }
        AgentRequest::Connect { port, .. } => forward::run(stream, port),
        AgentRequest::Quiesce { socket, .. } => {
            match pause::quiesce(me, std::path::Path::new(&socket)) {
                Ok(()) => proto::write_json(&mut stream, FrameKind::Reply, &serde_json::json!({})),
                Err(m) => proto::write_error(&mut stream, proto::ErrorKind::Failed, &m),
            }
        }
        AgentRequest::ReadFile(req) => {
            match islo_agent::files::read(std::path::Path::new(&req.path), req.offset, req.len) {
                Ok(data) => proto::write_frame(&mut stream, FrameKind::Stdout, &data),
                Err(e) => {
                    let m = format!("{}: {e}", req.path);
                    proto::write_error(&mut stream, proto::ErrorKind::Failed, &m)
                }
            }
        }
    }
}

/// A scan, its relative `dir` taken from the home directory of `user`.
fn scan_files(req: &islo_agent::ScanRequest) -> Result<islo_agent::ScanReply, String> {
    let root = match &req.user {
        Some(u) if !req.dir.starts_with('/') => {
            let user = users::lookup(std::path::Path::new("/"), u)
                .ok_or_else(|| format!("unknown user {u}"))?;
            PathBuf::from(user.home).join(&req.dir)
        }
        _ => PathBuf::from(&req.dir),
    };
    let files = islo_agent::files::scan(&root, &req.suffix, req.max_depth, req.max_files)
        .map_err(|e| format!("{}: {e}", root.display()))?;
    Ok(islo_agent::ScanReply {
        root: root.to_string_lossy().into_owned(),
        files,
    })
}
