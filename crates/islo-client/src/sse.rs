//! A minimal server-sent-events parser (event name + joined data lines).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed bytes, get complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    let event = if self.event.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut self.event)
                    };
                    out.push(SseEvent {
                        event,
                        data: self.data.join("\n"),
                    });
                    self.data.clear();
                }
            } else if line.starts_with(':') {
                continue;
            } else {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.event = value.to_string(),
                    "data" => self.data.push(value.to_string()),
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: stdout\nda").is_empty());
        let evs = p.push(b"ta: a\ndata: b\n\n: keepalive\n\nevent: exit\ndata: 3\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: "stdout".into(),
                    data: "a\nb".into()
                },
                SseEvent {
                    event: "exit".into(),
                    data: "3".into()
                },
            ]
        );
    }
}
