//! An in-process back end for tests without privileges.
//!
//! Each running sandbox gets a thread that speaks the real agent protocol on a real unix
//! socket, so islod's exec path is exercised end to end. It understands a few commands:
//! `echo ARGS…`, `true`, `false`, `exit N`, `env`, `pwd`, `whoami`, `hostname`, `cat` (stdin
//! to stdout), `tee PATH` (stdin into a file), `mkdir -p DIR`. Anything else exits 127 like a shell. Each
//! sandbox's files live in a host directory (`DIR/ID.root`, home directories under
//! `home/USER` and `root`), which `ScanFiles` and `ReadFile` serve.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use islo_agent::proto::{self, AgentRequest, ErrorKind, ExecRequest, ExitStatus, FrameKind};

use crate::{Driver, DriverError, Observed, SandboxId, SandboxSpec};

/// Where a fake sandbox keeps its hostname, in its root.
const HOSTNAME: &str = ".hostname";

/// The fake back end.
pub struct FakeDriver {
    dir: PathBuf,
    state: Mutex<HashMap<SandboxId, bool>>,
    /// Stopped sandboxes whose "processes" wait for a resume (the fake has none to save).
    paused: Mutex<std::collections::HashSet<SandboxId>>,
    /// Hand-overs fail (a test's failure path).
    refuse_hand_over: std::sync::atomic::AtomicBool,
}

impl FakeDriver {
    /// A fake keeping its sockets under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(HashMap::new()),
            paused: Mutex::new(std::collections::HashSet::new()),
            refuse_hand_over: Default::default(),
        }
    }

    /// Make every [`Driver::hand_over`] fail from now on.
    pub fn refuse_hand_overs(&self) {
        self.refuse_hand_over
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SandboxId, bool>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(&self, id: &SandboxId) -> Result<(), DriverError> {
        let path = self.agent_socket(id);
        let _ = std::fs::remove_file(&path);
        let root = self.dir.join(format!("{id}.root"));
        std::fs::create_dir_all(&root).map_err(DriverError::io(root.display().to_string()))?;
        let listener =
            UnixListener::bind(&path).map_err(DriverError::io(path.display().to_string()))?;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                // A removed socket file means the sandbox stopped: stop serving.
                if !path.exists() {
                    return;
                }
                let root = root.clone();
                std::thread::spawn(move || serve(conn, &root));
            }
        });
        Ok(())
    }

    /// The fake's hostname: a file its `hostname` command reads.
    fn write_hostname(&self, id: &SandboxId, hostname: &str) -> Result<(), DriverError> {
        let path = self.dir.join(format!("{id}.root")).join(HOSTNAME);
        std::fs::write(&path, hostname).map_err(DriverError::io(path.display().to_string()))
    }

    fn paused(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<SandboxId>> {
        self.paused.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn halt(&self, id: &SandboxId) {
        let path = self.agent_socket(id);
        let _ = std::fs::remove_file(&path);
        // Wake the accept loop so it notices.
        let _ = UnixStream::connect(&path);
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> String {
        "fake".into()
    }

    fn create(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        if self.lock().contains_key(&spec.id) {
            return Err(DriverError::AlreadyExists(spec.id.clone()));
        }
        let root = self.dir.join(format!("{}.root", spec.id));
        for layer in &spec.layers {
            // The fake has no overlay: each layer is copied over the last.
            crate::host::copy_tree(layer, &root)
                .map_err(DriverError::io(layer.display().to_string()))?;
        }
        self.launch(&spec.id)?;
        self.write_hostname(&spec.id, &spec.hostname)?;
        self.lock().insert(spec.id.clone(), true);
        Ok(())
    }

    fn start(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        match self.lock().get(&spec.id) {
            None => return Err(DriverError::NotFound(spec.id.clone())),
            Some(true) => return Ok(()),
            Some(false) => {}
        }
        self.paused().remove(&spec.id);
        self.launch(&spec.id)?;
        self.write_hostname(&spec.id, &spec.hostname)?;
        self.lock().insert(spec.id.clone(), true);
        Ok(())
    }

    fn stop(&self, id: &SandboxId) -> Result<(), DriverError> {
        self.paused().remove(id);
        let mut st = self.lock();
        match st.get_mut(id) {
            None => Err(DriverError::NotFound(id.clone())),
            Some(running) => {
                if *running {
                    self.halt(id);
                }
                *running = false;
                Ok(())
            }
        }
    }

    fn pause(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        spec.checkpointable("pausing")?;
        match self.observe(&spec.id)? {
            Observed::Running => {}
            Observed::Missing => return Err(DriverError::NotFound(spec.id.clone())),
            _ => {
                return Err(DriverError::Host(format!(
                    "sandbox {} is not running",
                    spec.id
                )));
            }
        }
        self.halt(&spec.id);
        self.lock().insert(spec.id.clone(), false);
        self.paused().insert(spec.id.clone());
        Ok(())
    }

    fn resume(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        match self.observe(&spec.id)? {
            Observed::Paused => {}
            Observed::Missing => return Err(DriverError::NotFound(spec.id.clone())),
            _ => {
                return Err(DriverError::Host(format!(
                    "sandbox {} is not paused",
                    spec.id
                )));
            }
        }
        self.launch(&spec.id)?;
        self.paused().remove(&spec.id);
        self.lock().insert(spec.id.clone(), true);
        Ok(())
    }

    /// The fake has no processes to save: the checkpoint is a directory with a note.
    fn checkpoint_to(&self, spec: &SandboxSpec, out: &Path) -> Result<(), DriverError> {
        spec.checkpointable("a memory snapshot")?;
        if self.observe(&spec.id)? != Observed::Running {
            return Err(DriverError::Host(format!(
                "sandbox {} is not running",
                spec.id
            )));
        }
        std::fs::create_dir(out).map_err(DriverError::io(out.display().to_string()))?;
        std::fs::write(out.join("fake"), spec.id.0.as_bytes())
            .map_err(DriverError::io(out.display().to_string()))
    }

    fn create_from(&self, spec: &SandboxSpec, checkpoint: &Path) -> Result<(), DriverError> {
        if !checkpoint.join("fake").is_file() {
            return Err(DriverError::Host(format!(
                "{} is not a checkpoint of this back end",
                checkpoint.display()
            )));
        }
        self.create(spec)
    }

    fn destroy(&self, id: &SandboxId) -> Result<(), DriverError> {
        self.paused().remove(id);
        if self.lock().remove(id) == Some(true) {
            self.halt(id);
        }
        let root = self.dir.join(format!("{id}.root"));
        let _ = std::fs::remove_dir_all(root);
        Ok(())
    }

    fn thaw(&self, id: &SandboxId) -> Result<(), DriverError> {
        match self.lock().get(id) {
            None => Err(DriverError::NotFound(id.clone())),
            Some(_) => Ok(()),
        }
    }

    fn hand_over(&self, spec: &SandboxSpec, hostname: &str) -> Result<(), DriverError> {
        spec.renamable()?;
        if self
            .refuse_hand_over
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(DriverError::Host("hand-over refused (test)".into()));
        }
        if self.lock().get(&spec.id) != Some(&true) {
            return Err(DriverError::NotFound(spec.id.clone()));
        }
        self.write_hostname(&spec.id, hostname)
    }

    fn observe(&self, id: &SandboxId) -> Result<Observed, DriverError> {
        Ok(match self.lock().get(id) {
            None => Observed::Missing,
            Some(true) => Observed::Running,
            Some(false) if self.paused().contains(id) => Observed::Paused,
            Some(false) => Observed::Stopped,
        })
    }

    fn agent_socket(&self, id: &SandboxId) -> PathBuf {
        self.dir.join(format!("{id}.sock"))
    }

    fn rootfs(&self, id: &SandboxId) -> Option<crate::Rootfs> {
        (self.lock().get(id) == Some(&true))
            .then(|| crate::Rootfs::at(self.dir.join(format!("{id}.root"))))
    }

    fn user_namespaces(&self) -> Result<(), String> {
        Ok(())
    }

    /// Both classes, as the OCI back end with runsc offers them (a fake sandbox is a fake in
    /// either).
    fn isolation_classes(&self) -> Vec<crate::ClassSupport> {
        crate::Isolation::ALL
            .into_iter()
            .map(|class| crate::ClassSupport {
                class,
                runtime: Ok("fake".into()),
            })
            .collect()
    }

    fn export_changes(
        &self,
        spec: &crate::SandboxSpec,
        out: &mut dyn Write,
    ) -> Result<crate::layer_tar::LayerStats, DriverError> {
        let id = &spec.id;
        if !self.lock().contains_key(id) {
            return Err(DriverError::NotFound(id.clone()));
        }
        let root = self.dir.join(format!("{id}.root"));
        crate::layer_tar::write_layer(&root, out)
            .map_err(DriverError::io(root.display().to_string()))
    }
}

pub(crate) fn serve(mut conn: UnixStream, root: &Path) {
    let Ok(Some(frame)) = proto::read_frame(&mut conn) else {
        return;
    };
    let Ok(req) = proto::decode::<AgentRequest>(&frame.payload, "request") else {
        return;
    };
    let _ = match req {
        AgentRequest::Ping { .. } => proto::write_json(
            &mut conn,
            FrameKind::Pong,
            &serde_json::json!({"version": 1}),
        ),
        AgentRequest::Exec(req) => fake_exec(&mut conn, &req, root),
        AgentRequest::ScanFiles(req) => {
            let dir = match req.user.as_deref() {
                _ if req.dir.starts_with('/') => req.dir.clone(),
                Some("root") => format!("/root/{}", req.dir),
                Some(u) => format!("/home/{u}/{}", req.dir),
                None => format!("/{}", req.dir),
            };
            let found = islo_agent::files::scan(
                &inside(root, &dir),
                &req.suffix,
                req.max_depth,
                req.max_files,
            );
            match found {
                Ok(files) => proto::write_json(
                    &mut conn,
                    FrameKind::Reply,
                    &islo_agent::ScanReply { root: dir, files },
                ),
                Err(e) => proto::write_error(&mut conn, ErrorKind::Failed, &e.to_string()),
            }
        }
        AgentRequest::ReadFile(req) => {
            match islo_agent::files::read(&inside(root, &req.path), req.offset, req.len) {
                Ok(d) => proto::write_frame(&mut conn, FrameKind::Stdout, &d),
                Err(e) => proto::write_error(&mut conn, ErrorKind::Failed, &e.to_string()),
            }
        }
        AgentRequest::Connect { .. } => proto::write_error(
            &mut conn,
            ErrorKind::Refused,
            "the fake back end has no network",
        ),
        AgentRequest::Quiesce { .. } | AgentRequest::Listen { .. } => proto::write_error(
            &mut conn,
            ErrorKind::BadRequest,
            "the fake back end pauses without its agent",
        ),
        AgentRequest::Attach(_)
        | AgentRequest::ListSessions { .. }
        | AgentRequest::KillSession { .. } => proto::write_error(
            &mut conn,
            ErrorKind::CannotStart,
            "the fake back end has no terminal sessions",
        ),
    };
}

/// `path` (absolute, as seen in the sandbox) under the fake's `root`; `..` is dropped.
fn inside(root: &Path, path: &str) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in Path::new(path).components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

fn fake_exec(
    conn: &mut UnixStream,
    req: &ExecRequest,
    root: &Path,
) -> Result<(), proto::ProtoError> {
    let args = &req.argv[1..];
    let (code, out): (i32, Vec<u8>) = match req.argv.first().map(String::as_str) {
        Some("echo") => (0, format!("{}\n", args.join(" ")).into_bytes()),
        Some("true") => (0, vec![]),
        Some("false") => (1, vec![]),
        Some("exit") => (
            args.first().and_then(|a| a.parse().ok()).unwrap_or(0),
            vec![],
        ),
        Some("env") => (
            0,
            req.env
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>()
                .into_bytes(),
        ),
        Some("pwd") => (0, format!("{}\n", req.workdir).into_bytes()),
        Some("hostname") => match std::fs::read(root.join(HOSTNAME)) {
            Ok(mut name) => {
                name.push(b'\n');
                (0, name)
            }
            Err(_) => (1, Vec::new()),
        },
        Some("whoami") => (0, format!("{}\n", req.user).into_bytes()),
        Some("cat") => (0, read_stdin(conn)?),
        Some("tee") if args.len() == 1 => {
            let data = read_stdin(conn)?;
            match std::fs::write(inside(root, &args[0]), &data) {
                Ok(()) => (0, data),
                Err(e) => {
                    let m = format!("tee: {}: {e}\n", args[0]);
                    proto::write_frame(conn, FrameKind::Stderr, m.as_bytes())?;
                    (1, data)
                }
            }
        }
        Some("mkdir") if args.len() == 2 && args[0] == "-p" => {
            std::fs::create_dir_all(inside(root, &args[1]))?;
            (0, vec![])
        }
        Some(other) => {
            proto::write_frame(
                conn,
                FrameKind::Stderr,
                format!("islo: {other}: command not found\n").as_bytes(),
            )?;
            (127, vec![])
        }
        None => return proto::write_error(conn, ErrorKind::CannotStart, "empty command"),
    };
    if !out.is_empty() {
        proto::write_frame(conn, FrameKind::Stdout, &out)?;
    }
    proto::write_json(conn, FrameKind::Exit, &ExitStatus { code, signal: None })?;
    conn.flush()?;
    Ok(())
}

fn read_stdin(conn: &mut UnixStream) -> Result<Vec<u8>, proto::ProtoError> {
    let mut data = Vec::new();
    while let Some(f) = proto::read_frame(conn)? {
        match f.kind {
            FrameKind::Stdin => data.extend(f.payload),
            FrameKind::StdinEof => break,
            _ => {}
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_passes_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FakeDriver::new(dir.path());
        crate::conformance::run_all(&driver, &|name| crate::conformance::spec(name, vec![]));
    }
}
