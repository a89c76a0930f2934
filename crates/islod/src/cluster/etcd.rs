//! A small, blocking etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`):
//! HTTP/1.1 on one kept-alive connection, TLS with a client certificate when configured, the
//! next endpoint tried when one fails. Blocking on purpose: the store calls it from inside a
//! SQLite transaction, on whatever thread runs the write.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// Errors talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (or none has a quorum): the message says what each said.
    #[error("etcd does not answer (no member reachable, or no quorum): {0}")]
    Unreachable(String),
    /// etcd answered with an error.
    #[error("etcd refused the request: {0}")]
    Refused(String),
    #[error("etcd's answer is malformed: {0}")]
    Malformed(String),
}

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdSettings {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Client TLS (needed for `https://` endpoints).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How long one request may take (an etcd without quorum holds a write until its own
    /// request timeout, about 7 s).
    pub timeout: Duration,
}

/// One key's value as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A condition of a transaction.
pub enum Cmp<'a> {
    /// The key's value equals this.
    Value(&'a str, &'a [u8]),
    /// The key does not exist.
    Missing(&'a str),
    /// The key was last written at this revision.
    ModRevision(&'a str, i64),
}

/// An operation of a transaction.
pub enum Op<'a> {
    Put {
        key: &'a str,
        value: &'a [u8],
        lease: i64,
    },
    Delete(&'a str),
    Get(&'a str),
}

enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>),
}

impl Conn {
    fn reader(&mut self) -> &mut dyn BufRead {
        match self {
            Conn::Plain(r) => r,
            Conn::Tls(r) => r.as_mut(),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Conn::Plain(r) => r.get_mut(),
            Conn::Tls(r) => r.get_mut(),
        }
    }
}

/// A client of one etcd cluster.
pub struct Etcd {
    settings: EtcdSettings,
    /// The endpoint in use and its connection.
    conn: Mutex<(usize, Option<Conn>)>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Result<Vec<u8>, EtcdError> {
    let Some(text) = v.as_str() else {
        return Ok(Vec::new());
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| EtcdError::Malformed(e.to_string()))
}

/// etcd's int64s are JSON strings (absent when zero).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The key after every key starting with `prefix` (etcd's `range_end` for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn kv_of(v: &Value) -> Result<Kv, EtcdError> {
    Ok(Kv {
        key: String::from_utf8(unb64(&v["key"])?)
            .map_err(|e| EtcdError::Malformed(e.to_string()))?,
        value: unb64(&v["value"])?,
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
        lease: int(&v["lease"]),
    })
}

impl Etcd {
    pub fn new(settings: EtcdSettings) -> Result<Self, EtcdError> {
        if settings.endpoints.is_empty() {
            return Err(EtcdError::Refused("no etcd endpoint is configured".into()));
        }
        Ok(Self {
            settings,
            conn: Mutex::new((0, None)),
        })
    }

    fn connect(&self, endpoint: &str) -> Result<Conn, String> {
        let (tls, rest) = match endpoint.split_once("://") {
            Some(("https", r)) => (true, r),
            Some(("http", r)) => (false, r),
            _ => (false, endpoint),
        };
        let hostport = rest.trim_end_matches('/');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .map_err(|e| format!("{endpoint}: {e}"))?
            .next()
            .ok_or_else(|| format!("{endpoint}: no address"))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("{endpoint}: {e}"))?;
        s.set_read_timeout(Some(self.settings.timeout)).ok();
        s.set_write_timeout(Some(self.settings.timeout)).ok();
        s.set_nodelay(true).ok();
        if !tls {
            return Ok(Conn::Plain(BufReader::new(s)));
        }
        let Some(cfg) = &self.settings.tls else {
            return Err(format!(
                "{endpoint}: https needs etcd TLS files in cluster.etcd_tls"
            ));
        };
        let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("{endpoint}: {e}"))?;
        let c = rustls::ClientConnection::new(cfg.clone(), name)
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(Conn::Tls(Box::new(BufReader::new(
            rustls::StreamOwned::new(c, s),
        ))))
    }

    /// POST `body` to `path`, on the connection in use or the next endpoint that answers.
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let text = body.to_string();
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.settings.endpoints.len();
        let mut said = Vec::new();
        for _ in 0..n + 1 {
            let at = guard.0;
            let endpoint = self.settings.endpoints[at].clone();
            if guard.1.is_none() {
                match self.connect(&endpoint) {
                    Ok(c) => guard.1 = Some(c),
                    Err(e) => {
                        said.push(e);
                        guard.0 = (at + 1) % n;
                        continue;
                    }
                }
            }
            let Some(conn) = guard.1.as_mut() else {
                continue;
            };
            match exchange(conn, hostport(&endpoint), path, &text) {
                Ok((status, v)) if status < 300 => return Ok(v),
                Ok((status, v)) => {
                    let msg = v["error"]
                        .as_str()
                        .or(v["message"].as_str())
                        .unwrap_or("no message")
                        .to_string();
                    // No leader, no quorum, a timed-out proposal: another member may do.
                    if status >= 500 {
                        said.push(format!("{endpoint}: {msg}"));
                        guard.1 = None;
                        guard.0 = (at + 1) % n;
                        continue;
                    }
                    return Err(EtcdError::Refused(format!("{path}: {msg}")));
                }
                Err(e) => {
                    said.push(format!("{endpoint}: {e}"));
                    guard.1 = None;
                    guard.0 = (at + 1) % n;
                }
            }
        }
        Err(EtcdError::Unreachable(said.join("; ")))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("/v3/kv/range", &json!({ "key": b64(key.as_bytes()) }))?;
        v["kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map(kv_of)
            .transpose()
    }

    /// Keys from `from` (inclusive) up to the end of `prefix`, in key order, at most `limit`
    /// (0: all).
    pub fn range(&self, from: &str, prefix: &str, limit: usize) -> Result<Vec<Kv>, EtcdError> {
        let v = self.call(
            "/v3/kv/range",
            &json!({
                "key": b64(from.as_bytes()),
                "range_end": b64(&prefix_end(prefix)),
                "limit": limit,
            }),
        )?;
        v["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Put `value` at `key` (attached to `lease`, 0 for none).
    pub fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/put",
            &json!({ "key": b64(key.as_bytes()), "value": b64(value), "lease": lease }),
        )?;
        Ok(())
    }

    /// Delete `key`.
    pub fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", &json!({ "key": b64(key.as_bytes()) }))?;
        Ok(())
    }

    /// Run `then` if every comparison holds, else `otherwise`: whether they held, and the
    /// keys the `Get`s of the branch that ran read.
    pub fn txn(
        &self,
        when: &[Cmp<'_>],
        then: &[Op<'_>],
        otherwise: &[Op<'_>],
    ) -> Result<(bool, Vec<Kv>), EtcdError> {
        let cmp: Vec<Value> = when
            .iter()
            .map(|c| match c {
                Cmp::Value(k, v) => json!({"key": b64(k.as_bytes()), "target": "VALUE",
                    "result": "EQUAL", "value": b64(v)}),
                Cmp::Missing(k) => json!({"key": b64(k.as_bytes()), "target": "CREATE",
                    "result": "EQUAL", "create_revision": 0}),
                Cmp::ModRevision(k, r) => json!({"key": b64(k.as_bytes()), "target": "MOD",
                    "result": "EQUAL", "mod_revision": r}),
            })
            .collect();
        let ops = |ops: &[Op<'_>]| -> Vec<Value> {
            ops.iter()
                .map(|o| match o {
                    Op::Put { key, value, lease } => json!({"request_put": {
                        "key": b64(key.as_bytes()), "value": b64(value), "lease": lease}}),
                    Op::Delete(k) => json!({"request_delete_range": {"key": b64(k.as_bytes())}}),
                    Op::Get(k) => json!({"request_range": {"key": b64(k.as_bytes())}}),
                })
                .collect()
        };
        let v = self.call(
            "/v3/kv/txn",
            &json!({"compare": cmp, "success": ops(then), "failure": ops(otherwise)}),
        )?;
        let mut read = Vec::new();
        for r in v["responses"].as_array().into_iter().flatten() {
            for kv in r["response_range"]["kvs"].as_array().into_iter().flatten() {
                read.push(kv_of(kv)?);
            }
        }
        Ok((v["succeeded"].as_bool().unwrap_or(false), read))
    }

    /// A lease of `ttl` seconds: its id.
    pub fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let v = self.call("/v3/lease/grant", &json!({ "TTL": ttl }))?;
        match int(&v["ID"]) {
            0 => Err(EtcdError::Malformed("a lease without an id".into())),
            id => Ok(id),
        }
    }

    /// Renew lease `id`: the seconds it has left (0: it had expired, and is gone).
    pub fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self.call("/v3/lease/keepalive", &json!({ "ID": id }))?;
        Ok(int(&v["result"]["TTL"]))
    }

    /// Give lease `id` up: the keys attached to it go at once.
    pub fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": id }))?;
        Ok(())
    }
}

fn hostport(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .trim_end_matches('/')
}

/// One request and its answer on `conn`: (status, JSON body). A chunked body (etcd's streams,
/// e.g. a lease keep-alive) is read to its end.
fn exchange(conn: &mut Conn, host: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.writer().write_all(req.as_bytes())?;
    conn.writer().flush()?;
    let r = conn.reader();
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut data = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..size]);
        }
    } else {
        let n = length.ok_or_else(|| bad("no Content-Length"))?;
        data.resize(n, 0);
        r.read_exact(&mut data)?;
    }
    // A stream's answer is one JSON object per message: the first is the one asked for.
    let first = data
        .split(|b| *b == b'\n')
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let v = serde_json::from_slice(first).map_err(|e| bad(&e.to_string()))?;
    Ok((status, v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefix_ends_after_its_last_key() {
        assert_eq!(super::prefix_end("/islo/log/"), b"/islo/log0".to_vec());
        assert_eq!(super::prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
