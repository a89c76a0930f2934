//! The local end of a sandbox terminal: raw mode (always restored), keystrokes up, output
//! down, window resizes, and the detach keys.

use std::io::{Read, Write};

use islo_api::{PtyFrame, PtySize};
use islo_client::{PtyConn, PtyReceiver, PtySender};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::{EXIT_FAILURE, Exit};

/// Ctrl-P then Ctrl-Q detaches (as in docker).
pub const DETACH_HINT: &str = "Ctrl-P Ctrl-Q";
const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// How a terminal connection ended.
pub enum Ended {
    /// The process exited with this code.
    Exited(i32),
    /// The user detached (the session lives on).
    Detached,
}

/// Raw mode for as long as it lives; restored on drop, including unwinding from a panic.
struct RawMode;

impl RawMode {
    fn enable() -> std::io::Result<Self> {
        crossterm::terminal::enable_raw_mode()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::terminal::disable_raw_mode();
            previous(info);
        }));
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// The local terminal's size, asked of the kernel (80x24 when neither stdout nor stdin is a
/// terminal; crossterm would run `tput` then).
pub fn size() -> PtySize {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()));
    match ws {
        Ok(w) if w.ws_row > 0 && w.ws_col > 0 => PtySize {
            rows: w.ws_row,
            cols: w.ws_col,
        },
        _ => PtySize { rows: 24, cols: 80 },
    }
}

/// Keystrokes from a thread (a blocking read cannot be cancelled; the process exits past it).
fn keystrokes() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Split off the detach sequence: returns the bytes to send and whether to detach.
fn scan_detach(input: &[u8], pending: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len() + 1);
    for &b in input {
        if *pending {
            *pending = false;
            if b == CTRL_Q {
                return (out, true);
            }
            out.push(CTRL_P);
        }
        if b == CTRL_P {
            *pending = true;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// What the input task reports to the reading loop.
enum InputEnd {
    /// The user typed the detach keys.
    Detach,
    /// Input ended (or could no longer be sent).
    Done,
}

/// Send keystrokes (and `extra` frames such as resizes) from their own task, so the reading
/// loop never waits on the network: if the peer stops reading input, output still drains.
/// With `detachable`, Ctrl-P Ctrl-Q ends it with [`InputEnd::Detach`]; with `eof`, the end
/// of local input is sent as an `eof` frame.
fn spawn_input(
    mut tx: PtySender,
    detachable: bool,
    eof: bool,
) -> (
    mpsc::UnboundedSender<PtyFrame>,
    tokio::task::JoinHandle<InputEnd>,
) {
    let (extra_tx, mut extra) = mpsc::unbounded_channel::<PtyFrame>();
    let task = tokio::spawn(async move {
        let mut keys = keystrokes();
        let mut pending = false;
        let mut keys_open = true;
        loop {
            tokio::select! {
                k = keys.recv(), if keys_open => match k {
                    Some(k) => {
                        let (send, detach) = if detachable { scan_detach(&k, &mut pending) } else { (k, false) };
                        if (!send.is_empty() && tx.send(PtyFrame::Data(send)).await.is_err()) || detach {
                            return if detach { InputEnd::Detach } else { InputEnd::Done };
                        }
                    }
                    None => {
                        keys_open = false;
                        if eof {
                            let _ = tx.send(PtyFrame::Eof).await;
                            return InputEnd::Done;
                        }
                    }
                },
                f = extra.recv() => match f {
                    Some(f) => {
                        if tx.send(f).await.is_err() {
                            return InputEnd::Done;
                        }
                    }
                    None => return InputEnd::Done,
                },
            }
        }
    });
    (extra_tx, task)
}

/// How a terminal's `error` ends the command: with the code of the `exit` the server sends
/// after it (125: it could not start; 255: the sandbox went away), or 1 from a server that
/// sends none.
async fn failure(rx: &mut PtyReceiver, message: String) -> Exit {
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), rx.next()).await;
    let code = match next {
        Ok(Some(Ok(PtyFrame::Exit(e)))) => e.code,
        _ => EXIT_FAILURE,
    };
    Exit { code, message }
}

/// Run the terminal until the remote process exits, the user detaches (when `detachable`)
/// or the connection fails. The local terminal is restored in every case.
pub async fn run(conn: PtyConn, detachable: bool) -> anyhow::Result<Ended> {
    let raw = RawMode::enable()?;
    let (tx, mut rx) = conn.split();
    let (extra, mut input) = spawn_input(tx, detachable, false);
    let mut winch = signal(SignalKind::window_change())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut out = std::io::stdout();
    let ended = loop {
        tokio::select! {
            i = &mut input => match i {
                Ok(InputEnd::Detach) | Ok(InputEnd::Done) | Err(_) => break Ended::Detached,
            },
            _ = winch.recv() => {
                let _ = extra.send(PtyFrame::Resize(size()));
            }
            _ = term.recv() => break Ended::Detached,
            _ = hup.recv() => break Ended::Detached,
            f = rx.next() => match f {
                Some(Ok(PtyFrame::Data(d))) => {
                    out.write_all(&d)?;
                    out.flush()?;
                }
                // The command could not start ("command not found"): the terminal is raw,
                // so its lines need their carriage returns.
                Some(Ok(PtyFrame::Stderr(d))) => {
                    let text = String::from_utf8_lossy(&d).replace('\n', "\r\n");
                    let mut err = std::io::stderr();
                    err.write_all(text.as_bytes())?;
                    err.flush()?;
                }
                Some(Ok(PtyFrame::Exit(e))) => break Ended::Exited(e.code),
                Some(Ok(PtyFrame::Error(m))) => {
                    drop(raw);
                    return Err(failure(&mut rx, m).await.into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    drop(raw);
                    return Err(e.into());
                }
                None => {
                    drop(raw);
                    return Err(Exit { code: EXIT_FAILURE, message: "the connection to the sandbox was lost".into() }.into());
                }
            },
        }
    };
    drop(raw);
    input.abort();
    Ok(ended)
}

/// Relay standard input (ending with `eof`) up and stdout/stderr down until the command
/// exits; returns its exit code. Input is sent from its own task (see [`spawn_input`]).
pub async fn pipes(conn: PtyConn) -> anyhow::Result<i32> {
    let (tx, mut rx) = conn.split();
    let (_extra, input) = spawn_input(tx, false, true);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let result = loop {
        match rx.next().await {
            Some(Ok(PtyFrame::Data(d))) => {
                out.write_all(&d)?;
                out.flush()?;
            }
            Some(Ok(PtyFrame::Stderr(d))) => {
                err.write_all(&d)?;
                err.flush()?;
            }
            Some(Ok(PtyFrame::Exit(e))) => break Ok(e.code),
            Some(Ok(PtyFrame::Error(m))) => break Err(failure(&mut rx, m).await.into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(e.into()),
            None => {
                break Err(Exit {
                    code: EXIT_FAILURE,
                    message: "the connection to the sandbox was lost".into(),
                }
                .into());
            }
        }
    };
    input.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequence() {
        let mut p = false;
        assert_eq!(scan_detach(b"ls\r", &mut p), (b"ls\r".to_vec(), false));
        assert_eq!(scan_detach(b"a\x10\x11b", &mut p), (b"a".to_vec(), true));
        let mut p = false;
        assert_eq!(scan_detach(b"x\x10", &mut p), (b"x".to_vec(), false));
        assert!(p, "a lone Ctrl-P waits for the next key");
        assert_eq!(scan_detach(b"y", &mut p), (b"\x10y".to_vec(), false));
        let mut p = false;
        assert_eq!(
            scan_detach(b"\x10\x10\x11", &mut p),
            (b"\x10".to_vec(), true)
        );
    }
}
