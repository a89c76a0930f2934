//! The contract between islod and `islo-agent`, the PID 1 of every sandbox.
//!
//! The agent listens on a unix socket that islod bind-mounts into the sandbox. Each connection
//! carries one request; see [`proto`] for the versioned frame format.

pub mod files;
pub mod proto;

pub use proto::{
    AgentError, AgentRequest, AttachRequest, ErrorKind, ExecRequest, ExitStatus, FileEntry, Frame,
    FrameKind, PROTOCOL_VERSION, ProtoError, ReadRequest, ScanReply, ScanRequest, SessionInfo,
    SessionSpec, TtySize, read_frame, write_frame,
};

/// Where the agent binary is mounted inside every sandbox.
pub const AGENT_PATH_IN_SANDBOX: &str = "/.islo/islo-agent";
/// Directory holding the agent socket inside every sandbox.
pub const RUN_DIR_IN_SANDBOX: &str = "/.islo/run";
/// Where a gVisor sandbox's agent binds its socket: a directory of the host's, bound in
/// (runsc cannot hand PID 1 a socket bound on the host).
pub const SOCKET_DIR_IN_SANDBOX: &str = "/.islo/sock";
/// File name of the agent socket inside [`RUN_DIR_IN_SANDBOX`] (and its host-side twin).
pub const SOCKET_NAME: &str = "agent.sock";
/// Set in PID 1's environment when the runtime hands it its listening socket as this
/// descriptor: the socket then lives on the host, out of the sandbox's reach.
pub const LISTEN_FD_ENV: &str = "ISLO_AGENT_LISTEN_FD";
