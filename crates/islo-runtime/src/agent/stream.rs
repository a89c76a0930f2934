//! Exec and terminal connections on tokio: the frames of [`islo_agent::proto`] read and
//! written through the protocol's one codec ([`proto::parse_head`], [`proto::encode_frame`]).

use islo_agent::proto::{self, AgentError, FrameKind, HEAD_LEN, ProtoError, TtySize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::ExecEvent;

/// Split a connection that carries an exec (or an attached session) for async use.
pub fn split(conn: std::os::unix::net::UnixStream) -> std::io::Result<(EventReader, InputWriter)> {
    conn.set_read_timeout(None)?;
    conn.set_nonblocking(true)?;
    let (r, w) = tokio::net::UnixStream::from_std(conn)?.into_split();
    Ok((EventReader { r }, InputWriter { w }))
}

/// The agent's side of an exec: output, then its end.
pub struct EventReader {
    r: OwnedReadHalf,
}

impl EventReader {
    /// Next event; `None` once the agent closed the connection. Frames that carry no exec
    /// event are skipped.
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>, ProtoError> {
        loop {
            let mut head = [0u8; HEAD_LEN];
            match self.r.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let (kind, len) = proto::parse_head(&head)?;
            let mut payload = vec![0u8; len];
            self.r.read_exact(&mut payload).await?;
            return Ok(Some(match kind {
                FrameKind::Stdout => ExecEvent::Stdout(payload),
                FrameKind::Stderr => ExecEvent::Stderr(payload),
                FrameKind::Exit => ExecEvent::Exit(proto::decode(&payload, "exit status")?),
                FrameKind::Error => ExecEvent::Error(AgentError::decode(&payload)),
                _ => continue,
            }));
        }
    }
}

/// The client's side of an exec: input, its end, terminal sizes and signals.
pub struct InputWriter {
    w: OwnedWriteHalf,
}

impl InputWriter {
    async fn frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), ProtoError> {
        self.w
            .write_all(&proto::encode_frame(kind, payload)?)
            .await?;
        Ok(())
    }

    pub async fn stdin(&mut self, data: &[u8]) -> Result<(), ProtoError> {
        for chunk in data.chunks(proto::MAX_PAYLOAD) {
            self.frame(FrameKind::Stdin, chunk).await?;
        }
        Ok(())
    }

    pub async fn close_stdin(&mut self) -> Result<(), ProtoError> {
        self.frame(FrameKind::StdinEof, b"").await
    }

    pub async fn resize(&mut self, size: TtySize) -> Result<(), ProtoError> {
        let json = serde_json::to_vec(&size).map_err(|source| ProtoError::Json {
            what: "terminal size",
            source,
        })?;
        self.frame(FrameKind::Resize, &json).await
    }

    pub async fn signal(&mut self, sig: u8) -> Result<(), ProtoError> {
        self.frame(FrameKind::Signal, &[sig]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_and_input_use_the_one_codec() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut events, mut input) = split(ours).unwrap();
        input.stdin(b"in").await.unwrap();
        input.resize(TtySize { rows: 2, cols: 3 }).await.unwrap();
        input.signal(15).await.unwrap();
        input.close_stdin().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            let f = proto::read_frame(&mut theirs).unwrap().unwrap();
            got.push((f.kind, f.payload));
        }
        assert_eq!(
            got,
            [
                (FrameKind::Stdin, b"in".to_vec()),
                (FrameKind::Resize, br#"{"rows":2,"cols":3}"#.to_vec()),
                (FrameKind::Signal, vec![15]),
                (FrameKind::StdinEof, vec![]),
            ]
        );
        proto::write_frame(&mut theirs, FrameKind::Pong, b"{}").unwrap();
        proto::write_frame(&mut theirs, FrameKind::Stdout, b"out").unwrap();
        proto::write_frame(&mut theirs, FrameKind::Exit, br#"{"code":143,"signal":15}"#).unwrap();
        proto::write_error(&mut theirs, proto::ErrorKind::CannotStart, "no").unwrap();
        drop(theirs);
        assert_eq!(
            events.next_event().await.unwrap(),
            Some(ExecEvent::Stdout(b"out".to_vec()))
        );
        let Some(ExecEvent::Exit(st)) = events.next_event().await.unwrap() else {
            panic!("exit expected")
        };
        assert_eq!((st.code, st.signal), (143, Some(15)));
        let Some(ExecEvent::Error(e)) = events.next_event().await.unwrap() else {
            panic!("error expected")
        };
        assert_eq!(e.kind, proto::ErrorKind::CannotStart);
        assert_eq!(events.next_event().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_malformed_frame_is_an_error() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut events, _input) = split(ours).unwrap();
        std::io::Write::write_all(&mut theirs, &[0, 0, 0, 1, 99, 0]).unwrap();
        assert!(matches!(
            events.next_event().await,
            Err(ProtoError::UnknownKind(99))
        ));
    }
}
