//! Speaking the agent protocol on async streams, and recording what passes (shared by the
//! terminal WebSockets and the SSH server).

use std::sync::Arc;

use islo_agent::proto::{FrameKind, MAX_PAYLOAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::Recording;

/// End a recording off the async threads (it waits for the log writer).
pub async fn end_recording(rec: &Option<Arc<Recording>>, exit: Option<i32>) {
    if let Some(r) = rec.clone() {
        let _ = tokio::task::spawn_blocking(move || r.end(exit)).await;
    }
}

/// The audit entry of a terminal size (`resize` stream): `COLSxROWS`, as asciinema writes it.
pub fn resize_entry(cols: u16, rows: u16) -> String {
    format!("{cols}x{rows}")
}

/// Record input (not waited for: it is stored before the output it causes).
pub fn record(rec: &Option<Arc<Recording>>, stream: &'static str, data: &[u8]) {
    if let Some(r) = rec {
        r.chunk(stream, data);
    }
}

/// Record output and wait until it is stored, before it is forwarded.
pub async fn record_output(rec: &Option<Arc<Recording>>, stream: &'static str, data: &[u8]) {
    if let Some(r) = rec {
        r.chunk_stored(stream, data).await;
    }
}

pub async fn read_agent_frame(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = FrameKind::from_u8(head[4]).filter(|_| len <= MAX_PAYLOAD);
    let Some(kind) = kind else {
        return Err(std::io::Error::other("malformed agent frame"));
    };
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((kind, payload)))
}

pub async fn write_agent_frame(
    w: &mut (impl AsyncWriteExt + Unpin),
    kind: FrameKind,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
    w.write_all(&buf).await
}

/// An agent connection, made non-blocking for tokio.
pub fn to_async(s: std::os::unix::net::UnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}
