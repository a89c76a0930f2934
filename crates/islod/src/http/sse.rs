//! Server-sent events, written by hand so any byte sequence is encoded correctly.

use bytes::Bytes;

/// One SSE event. Text data is split into `data:` lines; CR and CRLF become LF (a bare CR
/// would end an SSE line).
pub fn event(name: &str, data: &str) -> Bytes {
    let data = data.replace("\r\n", "\n").replace('\r', "\n");
    let mut s = format!("event: {name}\n");
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

/// A comment line that keeps idle connections open through proxies.
pub fn keepalive() -> Bytes {
    Bytes::from_static(b": keepalive\n\n")
}

/// Decodes UTF-8 across chunk boundaries: a character split between chunks is carried over.
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    pub fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_line_safe() {
        assert_eq!(
            &event("stdout", "a\nb")[..],
            b"event: stdout\ndata: a\ndata: b\n\n"
        );
        assert_eq!(
            &event("stdout", "x\r\ny\rz")[..],
            b"event: stdout\ndata: x\ndata: y\ndata: z\n\n"
        );
    }

    #[test]
    fn utf8_split_across_chunks() {
        let mut c = Utf8Carry::default();
        let snow = "☃".as_bytes();
        assert_eq!(c.push(&snow[..1]), "");
        assert_eq!(c.push(&snow[1..]), "☃");
        assert_eq!(c.push(b"\xffok"), "\u{FFFD}ok");
    }
}
