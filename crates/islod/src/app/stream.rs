//! One typed exec stream. Everything that runs in a sandbox (the exec API, streamed or in the
//! background, terminal and pipe WebSockets, SSH, session attaches, setup steps and sources)
//! goes through [`ExecStream`]: events out, input in, the audit recording inside. Transports
//! only translate events and input; none of them speaks the agent protocol.
//!
//! One exit-code rule for every transport: the command's own code (128+N when signal N ended
//! it); [`EXIT_CANNOT_START`] when it never started; [`EXIT_LOST`] when the sandbox went away
//! while it ran.

use std::sync::Arc;

use islo_agent::{AgentError, TtySize};
use islo_runtime::agent::ExecEvent as AgentEvent;
use islo_runtime::agent::stream::{EventReader, InputWriter};

use super::Recording;

/// The exit code of a command that could not be started: islo or the sandbox's agent refused
/// it (unknown user, unusable workdir, no terminal, the agent unreachable). `docker run` uses
/// the same code for the same case. A command that starts but is not found exits 127 (126 when
/// it is not executable), as in a shell.
pub const EXIT_CANNOT_START: i32 = 125;
/// The exit code when the sandbox stopped or its agent connection broke mid-run (OpenSSH's
/// code for a lost connection).
pub const EXIT_LOST: i32 = 255;

/// One event of a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended with this code (128+N for signal N). The last event.
    Exit(i32),
    /// The command ran past its `timeout_secs` and was killed; `Exit` follows.
    TimedOut,
    /// The command could not run or the sandbox went away. The last event.
    Error(StreamError),
}

/// Why an exec ended without an exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StreamError {
    pub kind: StreamErrorKind,
    pub message: String,
}

/// The two ways an exec ends without an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// Nothing ran.
    CannotStart,
    /// It ran, but the sandbox or the connection to it went away.
    Lost,
}

impl StreamError {
    pub fn cannot_start(message: impl Into<String>) -> Self {
        Self {
            kind: StreamErrorKind::CannotStart,
            message: message.into(),
        }
    }

    pub fn lost(message: impl Into<String>) -> Self {
        Self {
            kind: StreamErrorKind::Lost,
            message: message.into(),
        }
    }

    /// The exit code a transport that needs one (SSH) reports.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            StreamErrorKind::CannotStart => EXIT_CANNOT_START,
            StreamErrorKind::Lost => EXIT_LOST,
        }
    }
}

/// The agent refused an exec before it ran.
impl From<AgentError> for StreamError {
    fn from(e: AgentError) -> Self {
        Self::cannot_start(e.message)
    }
}

/// Input to a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Data(Vec<u8>),
    /// End of input (pipes; on a terminal the client types ^D instead).
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
    Signal(u8),
}

/// A running exec, or an attach to a session: split it to read and write from two tasks.
pub struct ExecStream {
    pub output: ExecOutput,
    pub input: ExecInputs,
}

impl ExecStream {
    pub(super) fn new(
        events: EventReader,
        input: InputWriter,
        rec: Option<Arc<Recording>>,
    ) -> Self {
        Self {
            output: ExecOutput {
                events,
                rec: rec.clone(),
                done: false,
                _busy: None,
            },
            input: ExecInputs {
                w: input,
                rec,
                open: true,
            },
        }
    }

    /// Keep the sandbox active (lifecycle policies) while the output is read.
    pub(super) fn keep_busy(mut self, busy: super::lifecycle::Busy) -> Self {
        self.output._busy = Some(busy);
        self
    }
}

/// Events of an exec. Output is in the audit log before it is handed out, and the log is
/// complete before the exit is.
pub struct ExecOutput {
    events: EventReader,
    rec: Option<Arc<Recording>>,
    done: bool,
    _busy: Option<super::lifecycle::Busy>,
}

impl ExecOutput {
    /// The next event; `None` after the last one (`Exit` or `Error`).
    pub async fn next(&mut self) -> Option<ExecEvent> {
        if self.done {
            return None;
        }
        let ev = match self.events.next_event().await {
            Ok(Some(AgentEvent::Stdout(b))) => ExecEvent::Stdout(b),
            Ok(Some(AgentEvent::Stderr(b))) => ExecEvent::Stderr(b),
            Ok(Some(AgentEvent::Exit(st))) => ExecEvent::Exit(st.code),
            Ok(Some(AgentEvent::Error(e))) => ExecEvent::Error(e.into()),
            Ok(None) => ExecEvent::Error(StreamError::lost(
                "the sandbox stopped while the command ran",
            )),
            Err(e) => ExecEvent::Error(StreamError::lost(format!(
                "the connection to the sandbox's agent broke: {e}"
            ))),
        };
        self.record(&ev).await;
        self.done = matches!(ev, ExecEvent::Exit(_) | ExecEvent::Error(_));
        Some(ev)
    }

    async fn record(&self, ev: &ExecEvent) {
        if let Some(rec) = &self.rec {
            record_event(rec, ev).await;
        }
    }

    /// Note in the audit log that the command ran out of time (before it is killed).
    pub fn record_timeout(&self) {
        if let Some(rec) = &self.rec {
            rec.chunk("islo", TIMED_OUT);
        }
    }
}

const TIMED_OUT: &[u8] = b"timed out; killed\n";

/// Put an event in the audit log: output waited for until stored, the end closing the log.
pub(super) async fn record_event(rec: &Arc<Recording>, ev: &ExecEvent) {
    match ev {
        ExecEvent::Stdout(b) => rec.chunk_stored("stdout", b).await,
        ExecEvent::Stderr(b) => rec.chunk_stored("stderr", b).await,
        ExecEvent::Exit(code) => rec.end_async(Some(*code)).await,
        ExecEvent::Error(e) => {
            rec.chunk("islo", format!("{e}\n").as_bytes());
            rec.end_async(None).await;
        }
        ExecEvent::TimedOut => rec.chunk("islo", TIMED_OUT),
    }
}

impl Drop for ExecOutput {
    /// A client that leaves before the end closes the recording (without an exit code).
    fn drop(&mut self) {
        if let Some(rec) = self.rec.take().filter(|_| !self.done) {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn(async move { rec.end_async(None).await })),
                Err(_) => rec.end(None),
            }
        }
    }
}

/// The input side of an exec. Input is recorded (not waited for: it is stored before the
/// output it causes), and so is each terminal size, as `COLSxROWS`.
pub struct ExecInputs {
    w: InputWriter,
    rec: Option<Arc<Recording>>,
    open: bool,
}

impl ExecInputs {
    /// Send input; `false` once the agent's side has closed (the process ended), after which
    /// input is dropped.
    pub async fn send(&mut self, input: ExecInput) -> bool {
        if !self.open {
            return false;
        }
        let sent = match input {
            ExecInput::Data(d) => {
                self.record("stdin", &d);
                self.w.stdin(&d).await
            }
            ExecInput::Eof => self.w.close_stdin().await,
            ExecInput::Resize { cols, rows } => {
                self.record_size(cols, rows);
                self.w.resize(TtySize { rows, cols }).await
            }
            ExecInput::Signal(sig) => self.w.signal(sig).await,
        };
        self.open = sent.is_ok();
        self.open
    }

    /// Record a terminal's size without sending it (the size it was opened with).
    pub fn record_size(&self, cols: u16, rows: u16) {
        self.record("resize", format!("{cols}x{rows}").as_bytes());
    }

    fn record(&self, stream: &'static str, data: &[u8]) {
        if let Some(r) = &self.rec {
            r.chunk(stream, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use islo_agent::proto::{self, ErrorKind, FrameKind};

    fn stream() -> (ExecStream, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (events, input) = islo_runtime::agent::stream::split(ours).unwrap();
        (ExecStream::new(events, input, None), theirs)
    }

    #[tokio::test]
    async fn exit_codes_follow_one_rule() {
        let (mut s, mut agent) = stream();
        proto::write_frame(&mut agent, FrameKind::Stdout, b"x").unwrap();
        proto::write_frame(&mut agent, FrameKind::Exit, br#"{"code":143,"signal":15}"#).unwrap();
        assert_eq!(
            s.output.next().await,
            Some(ExecEvent::Stdout(b"x".to_vec()))
        );
        assert_eq!(s.output.next().await, Some(ExecEvent::Exit(143)));
        assert_eq!(s.output.next().await, None, "nothing after the last event");

        let (mut s, mut agent) = stream();
        proto::write_error(&mut agent, ErrorKind::CannotStart, "unknown user \"x\"").unwrap();
        let Some(ExecEvent::Error(e)) = s.output.next().await else {
            panic!("error expected")
        };
        assert_eq!(
            (e.exit_code(), e.message.as_str()),
            (125, "unknown user \"x\"")
        );

        let (mut s, agent) = stream();
        drop(agent);
        let Some(ExecEvent::Error(e)) = s.output.next().await else {
            panic!("error expected")
        };
        assert_eq!(e.kind, StreamErrorKind::Lost);
        assert_eq!(e.exit_code(), 255);
        assert!(!s.input.send(ExecInput::Data(b"late".to_vec())).await);
    }

    #[tokio::test]
    async fn input_reaches_the_agent_as_frames() {
        let (mut s, mut agent) = stream();
        assert!(s.input.send(ExecInput::Data(b"hi".to_vec())).await);
        assert!(s.input.send(ExecInput::Resize { cols: 80, rows: 24 }).await);
        assert!(s.input.send(ExecInput::Signal(2)).await);
        assert!(s.input.send(ExecInput::Eof).await);
        let kinds: Vec<FrameKind> = (0..4)
            .map(|_| proto::read_frame(&mut agent).unwrap().unwrap().kind)
            .collect();
        assert_eq!(
            kinds,
            [
                FrameKind::Stdin,
                FrameKind::Resize,
                FrameKind::Signal,
                FrameKind::StdinEof
            ]
        );
    }
}
