//! The sandboxes' resolver. Every DNS query a sandbox sends (to any server: islod redirects
//! UDP port 53) lands here. `A` queries are answered with the gateway's own address on the
//! sandbox's link, so every name leads to the gateway, which decides by the name the client
//! then sends (SNI or `Host`); `AAAA` gets an empty answer (sandboxes have no IPv6); other
//! types are refused. Queries from unknown peers get no answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::Control;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const TTL_SECS: u32 = 5;

/// A parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Whether recursion was desired (echoed back).
    pub rd: bool,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// End of the question section in the query.
    end: usize,
}

/// Parse a query with exactly one question; `None` for anything else.
pub fn parse_query(q: &[u8]) -> Option<Question> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    if qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression in a question, or garbage
        }
        let label = q.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*q.get(i + 2)?, *q.get(i + 3)?]);
    Some(Question {
        id: u16::from_be_bytes([q[0], q[1]]),
        rd: q[2] & 0x01 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        end: i + 4,
    })
}

/// The answer to `q` (whose bytes are `query`), pointing `A` at `addr`.
pub fn answer(query: &[u8], q: &Question, addr: Ipv4Addr) -> Vec<u8> {
    let supported = q.qclass == CLASS_IN && matches!(q.qtype, TYPE_A | TYPE_AAAA);
    let rcode: u8 = if supported { 0 } else { 5 }; // 5 = REFUSED
    let with_a = supported && q.qtype == TYPE_A;
    let mut out = Vec::with_capacity(q.end + 16);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.push(0x80 | 0x04 | u8::from(q.rd)); // QR, AA, RD echoed
    out.push(0x80 | rcode); // RA
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&u16::from(with_a).to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(&query[12..q.end]);
    if with_a {
        out.extend_from_slice(&[0xc0, 0x0c]); // name: pointer to the question
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL_SECS.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&addr.octets());
    }
    out
}

/// Serve queries on `sock` for as long as the gateway runs.
pub async fn serve(sock: UdpSocket, control: Arc<dyn Control>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, peer): (usize, SocketAddr) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            // A datagram's error (an ICMP answer to an earlier reply) must not stop the
            // resolver: note it and go on.
            Err(e) => {
                tracing::debug!(error = %e, "gateway DNS receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
        };
        let Some(client) = control.client(peer.ip()) else {
            continue;
        };
        let IpAddr::V4(gw) = client.gateway_addr else {
            continue;
        };
        let query = &buf[..n];
        if let Some(q) = parse_query(query) {
            let _ = sock.send_to(&answer(query, &q, gw), peer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn a_points_at_the_gateway() {
        let q = query("Api.Example.test", TYPE_A);
        let parsed = parse_query(&q).unwrap();
        assert_eq!(parsed.name, "api.example.test");
        assert_eq!(parsed.id, 0x1234);
        let a = answer(&q, &parsed, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[10, 0, 0, 1]);
    }

    #[test]
    fn aaaa_is_empty_and_others_refused() {
        let q = query("x.test", TYPE_AAAA);
        let a = answer(&q, &parse_query(&q).unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 0);
        assert_eq!(a[3] & 0x0f, 0);
        let q = query("x.test", 16);
        let a = answer(&q, &parse_query(&q).unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(a[3] & 0x0f, 5);
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut q = query("x.test", TYPE_A);
        q.truncate(q.len() - 2);
        assert!(parse_query(&q).is_none());
        let mut r = query("x.test", TYPE_A);
        r[2] |= 0x80; // a response, not a query
        assert!(parse_query(&r).is_none());
    }
}
