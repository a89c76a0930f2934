//! Recording every exec and terminal session: who ran what, when, every chunk in and out
//! (timestamp, stream, sequence), how it ended. One writer thread owns the writes, so the
//! exec paths only queue; `end` waits until everything queued before it is stored, so a
//! finished command's log is complete when its exit is reported. A session records at most
//! `cap` bytes; past it one `islo` line marks the cut.
//!
//! Output is stored before it is forwarded: the exec paths hand a chunk to the writer and
//! wait for it to be committed ([`Recording::chunk_stored`]). The writer stores whatever is
//! queued in one transaction, so concurrent sessions share commits; a crash of islod loses no
//! output a user saw, and the restart marks the sessions it cut.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use crate::store::{AuditWrite, LogLine, Store, now_rfc3339};

/// A write for the writer thread, and who waits for it to be stored.
struct Msg {
    write: AuditWrite,
    waiter: Option<Waiter>,
}

/// Who waits for a write to be stored: a blocked thread, or a task.
enum Waiter {
    Thread(Sender<()>),
    Task(tokio::sync::oneshot::Sender<()>),
}

/// Messages the writer may be behind by before the exec paths wait for it.
const QUEUE: usize = 256;

/// The audit log's writer.
pub struct Audit {
    tx: Mutex<SyncSender<Msg>>,
    cap: u64,
}

impl Audit {
    /// Start the writer thread; each session keeps at most `cap` bytes.
    pub fn new(store: Arc<Store>, cap: u64) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::spawn(move || write_forever(&store, &rx));
        Self {
            tx: Mutex::new(tx),
            cap,
        }
    }

    fn send(&self, m: Msg) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let _ = tx.send(m);
    }

    /// Begin recording a session.
    pub fn start(
        self: &Arc<Self>,
        sandbox_id: &str,
        interactive: bool,
        user: &str,
        command: String,
    ) -> Arc<Recording> {
        let id = uuid::Uuid::now_v7().to_string();
        let write = AuditWrite::Start {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            interactive,
            user: user.to_string(),
            command,
            at: now_rfc3339(),
        };
        self.send(Msg {
            write,
            waiter: None,
        });
        Arc::new(Recording {
            audit: self.clone(),
            id,
            seq: Mutex::new(0),
            bytes: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            skip_stdout: AtomicU64::new(0),
        })
    }
}

/// argv as a shell would show it (`(login shell)` when empty).
pub fn shell_line(argv: &[String]) -> String {
    if argv.is_empty() {
        return "(login shell)".into();
    }
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One session being recorded.
pub struct Recording {
    audit: Arc<Audit>,
    id: String,
    /// The last chunk's sequence number; held while a chunk is queued, so numbers follow
    /// the queue's order.
    seq: Mutex<i64>,
    bytes: AtomicU64,
    cut: AtomicBool,
    ended: AtomicBool,
    /// Output bytes still to leave out (a re-attach's replay of what was recorded before).
    skip_stdout: AtomicU64,
}

impl Recording {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Leave the next `n` bytes of stdout out of the recording.
    pub fn skip_stdout(&self, n: u64) {
        self.skip_stdout.store(n, Ordering::SeqCst);
    }

    /// Record a chunk of `stream` (`stdout`, `stderr` or `stdin`) without waiting for it to
    /// be stored.
    pub fn chunk(&self, stream: &'static str, data: &[u8]) {
        self.queue(stream, data, None);
    }

    /// Record a chunk and return once it is stored: what is forwarded after this is in the
    /// log even if islod is killed the next moment.
    pub async fn chunk_stored(&self, stream: &'static str, data: &[u8]) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.queue(stream, data, Some(tx)) {
            let _ = rx.await;
        }
    }

    /// [`Recording::chunk_stored`] for a blocking thread.
    pub fn chunk_stored_blocking(&self, stream: &'static str, data: &[u8]) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.queue(stream, data, Some(tx)) {
            let _ = rx.blocking_recv();
        }
    }

    /// Queue a chunk; whether it was queued (nothing is, past the cap or when skipped).
    fn queue(
        &self,
        stream: &'static str,
        data: &[u8],
        stored: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> bool {
        let data = if stream == "stdout" {
            let skip = self
                .skip_stdout
                .load(Ordering::SeqCst)
                .min(data.len() as u64);
            self.skip_stdout.fetch_sub(skip, Ordering::SeqCst);
            &data[skip as usize..]
        } else {
            data
        };
        if data.is_empty() || self.cut.load(Ordering::SeqCst) {
            return false;
        }
        let total = self.bytes.fetch_add(data.len() as u64, Ordering::SeqCst) + data.len() as u64;
        let (stream, data, cut) = if total > self.audit.cap {
            self.cut.store(true, Ordering::SeqCst);
            let msg = format!(
                "[islo: log cut after {} bytes; the rest was not recorded]\n",
                self.audit.cap
            );
            ("islo", msg.into_bytes(), true)
        } else {
            (stream, data.to_vec(), false)
        };
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let line = LogLine {
            seq: *seq,
            ts: now_rfc3339(),
            stream: stream.to_string(),
            data,
        };
        self.audit.send(Msg {
            write: AuditWrite::Chunk {
                id: self.id.clone(),
                line,
                bytes: total,
                cut,
            },
            waiter: stored.map(Waiter::Task),
        });
        drop(seq);
        crate::fault::point("audit.queued");
        true
    }

    /// End the session; returns once everything recorded before is stored.
    pub fn end(&self, exit: Option<i32>) {
        let (done, wait) = channel();
        if self.queue_end(exit, Waiter::Thread(done)) {
            let _ = wait.recv();
        }
    }

    /// [`Recording::end`] for a task: the same wait, without holding a thread.
    pub async fn end_async(&self, exit: Option<i32>) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue_end(exit, Waiter::Task(done)) {
            let _ = wait.await;
        }
    }

    /// Queue the session's end (once); whether it was queued now.
    fn queue_end(&self, exit: Option<i32>, waiter: Waiter) -> bool {
        if self.ended.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.audit.send(Msg {
            write: AuditWrite::End {
                id: self.id.clone(),
                at: now_rfc3339(),
                exit,
            },
            waiter: Some(waiter),
        });
        true
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.end(None);
    }
}

fn write_forever(store: &Store, rx: &Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        // Everything queued meanwhile goes in the same transaction.
        let batch: Vec<Msg> = std::iter::once(first)
            .chain(rx.try_iter().take(4 * QUEUE))
            .collect();
        let (writes, waiters): (Vec<AuditWrite>, Vec<Option<Waiter>>) =
            batch.into_iter().map(|m| (m.write, m.waiter)).unzip();
        if let Err(e) = store.write_audit(&writes) {
            tracing::error!(error = %e, "writing the audit log");
        }
        for w in waiters.into_iter().flatten() {
            match w {
                Waiter::Thread(d) => drop(d.send(())),
                Waiter::Task(d) => drop(d.send(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order_and_cuts_at_the_cap() {
        let store = Arc::new(Store::memory().unwrap());
        let t = store.ensure_tenant("a").unwrap();
        let sb = crate::store::SandboxRow {
            ..crate::store::tests_support::row(&t, "box")
        };
        store.insert_sandbox(&sb).unwrap();
        let audit = Arc::new(Audit::new(store.clone(), 10));
        let rec = audit.start(
            &sb.id,
            false,
            "islo",
            shell_line(&["echo".into(), "a b".into()]),
        );
        rec.chunk("stdout", b"12345");
        rec.chunk("stderr", b"678");
        rec.chunk("stdout", b"9abcdef");
        rec.chunk("stdout", b"never");
        rec.end(Some(0));
        let s = store.audit_session(&sb.id, rec.id()).unwrap().unwrap();
        assert_eq!(
            (s.command.as_str(), s.exit_code, s.cut),
            ("echo 'a b'", Some(0), true)
        );
        let lines = store.audit_lines(rec.id(), 0, None).unwrap();
        let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
        assert_eq!(streams, ["stdout", "stderr", "islo"]);
        assert!(String::from_utf8_lossy(&lines[2].data).contains("cut after 10 bytes"));
    }
}
