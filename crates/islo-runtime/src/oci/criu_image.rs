//! Two edits of CRIU images, so that a checkpoint of one sandbox restores as another (a memory
//! snapshot's fork): its user namespace's host ids and its hostname.
//!
//! An image file is 8 bytes of magic, then entries: a little-endian `u32` length and that many
//! bytes of protobuf. Only the two messages touched here are read (`userns_entry`: repeated
//! `uid_gid_extent {first, lower_first, count}` as fields 1 and 2; `utsns_entry`: `nodename`,
//! `domainname`), with a protobuf reader just large enough for them.

use std::path::Path;

/// One field of a message: its number and either a varint or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("CRIU image: {what}"),
    )
}

fn read_varint(b: &[u8], at: &mut usize) -> std::io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| bad("truncated varint"))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("varint too long"))
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn decode(b: &[u8]) -> std::io::Result<Vec<(u64, Value)>> {
    let (mut at, mut out) = (0, Vec::new());
    while at < b.len() {
        let key = read_varint(b, &mut at)?;
        let v = match key & 7 {
            0 => Value::Varint(read_varint(b, &mut at)?),
            2 => {
                let n = usize::try_from(read_varint(b, &mut at)?).map_err(|_| bad("length"))?;
                let end = at.checked_add(n).filter(|e| *e <= b.len());
                let end = end.ok_or_else(|| bad("truncated field"))?;
                let v = Value::Bytes(b[at..end].to_vec());
                at = end;
                v
            }
            w => return Err(bad(&format!("wire type {w} not expected"))),
        };
        out.push((key >> 3, v));
    }
    Ok(out)
}

fn encode(fields: &[(u64, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        match v {
            Value::Varint(x) => {
                write_varint(&mut out, n << 3);
                write_varint(&mut out, *x);
            }
            Value::Bytes(b) => {
                write_varint(&mut out, (n << 3) | 2);
                write_varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// Rewrite every entry of the image at `path` with `f`.
fn edit(path: &Path, f: impl Fn(Vec<(u64, Value)>) -> Vec<(u64, Value)>) -> std::io::Result<()> {
    let b = std::fs::read(path)?;
    let head = b.get(..8).ok_or_else(|| bad("no magic"))?;
    let (mut at, mut out) = (8, head.to_vec());
    while at < b.len() {
        let len = b.get(at..at + 4).ok_or_else(|| bad("truncated entry"))?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let body = b
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| bad("truncated entry"))?;
        let new = encode(&f(decode(body)?));
        out.extend_from_slice(&(new.len() as u32).to_le_bytes());
        out.extend_from_slice(&new);
        at += 4 + len;
    }
    // CRIU reads some images from inside the restored user namespace: their mode stays.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path)?.permissions());
    crate::host::write_atomic(path, &out, mode & 0o7777)
}

/// Map the user namespace of the image at `path` onto host ids from `base` (inside id `n` is
/// `base + n`), keeping its extents' inside ranges.
pub fn rebase_userns(path: &Path, base: u32) -> std::io::Result<()> {
    edit(path, |fields| {
        fields
            .into_iter()
            .map(|(n, v)| match (n, v) {
                (1 | 2, Value::Bytes(extent)) => {
                    let mut e = decode(&extent).unwrap_or_default();
                    let first = e.iter().find_map(|(n, v)| match (n, v) {
                        (1, Value::Varint(f)) => Some(*f),
                        _ => None,
                    });
                    for (n, v) in e.iter_mut() {
                        if *n == 2 {
                            *v = Value::Varint(u64::from(base) + first.unwrap_or(0));
                        }
                    }
                    (n, Value::Bytes(encode(&e)))
                }
                other => other,
            })
            .collect()
    })
}

/// Set the hostname of the UTS namespace image at `path`.
pub fn set_hostname(path: &Path, hostname: &str) -> std::io::Result<()> {
    edit(path, |fields| {
        fields
            .into_iter()
            .map(|(n, v)| match n {
                1 => (1, Value::Bytes(hostname.as_bytes().to_vec())),
                _ => (n, v),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What CRIU 4.1.1 wrote for a sandbox of base 1074200576 and hostname `cr1`.
    const USERNS: &[u8] = &[
        0x19, 0x43, 0x56, 0x54, 0x06, 0x49, 0x47, 0x55, 0x1c, 0, 0, 0, 0x0a, 0x0c, 0x08, 0x00,
        0x10, 0x80, 0x80, 0x9c, 0x80, 0x04, 0x18, 0x80, 0x80, 0x04, 0x12, 0x0c, 0x08, 0x00, 0x10,
        0x80, 0x80, 0x9c, 0x80, 0x04, 0x18, 0x80, 0x80, 0x04,
    ];
    const UTSNS: &[u8] = &[
        0x19, 0x43, 0x56, 0x54, 0x03, 0x32, 0x47, 0x54, 0x0d, 0, 0, 0, 0x0a, 0x03, b'c', b'r',
        b'1', 0x12, 0x06, b'(', b'n', b'o', b'n', b'e', b')',
    ];

    fn extents(path: &Path) -> Vec<Vec<(u64, Value)>> {
        let b = std::fs::read(path).unwrap();
        decode(&b[12..])
            .unwrap()
            .into_iter()
            .map(|(_, v)| match v {
                Value::Bytes(e) => decode(&e).unwrap(),
                Value::Varint(_) => panic!("an extent is a message"),
            })
            .collect()
    }

    #[test]
    fn a_user_namespace_moves_to_other_host_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("userns-14.img");
        std::fs::write(&p, USERNS).unwrap();
        assert_eq!(extents(&p)[0][1], (2, Value::Varint(1_074_200_576)));
        rebase_userns(&p, 1_074_266_112).unwrap();
        let after = std::fs::read(&p).unwrap();
        assert_eq!(&after[..8], &USERNS[..8], "the magic stays");
        for e in extents(&p) {
            assert_eq!(
                e,
                vec![
                    (1, Value::Varint(0)),
                    (2, Value::Varint(1_074_266_112)),
                    (3, Value::Varint(65536))
                ]
            );
        }
    }

    #[test]
    fn a_hostname_is_replaced_and_the_domain_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("utsns-12.img");
        std::fs::write(&p, UTSNS).unwrap();
        set_hostname(&p, "fork-7").unwrap();
        let b = std::fs::read(&p).unwrap();
        let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        assert_eq!(len, b.len() - 12);
        assert_eq!(
            decode(&b[12..]).unwrap(),
            vec![
                (1, Value::Bytes(b"fork-7".to_vec())),
                (2, Value::Bytes(b"(none)".to_vec()))
            ]
        );
    }

    #[test]
    fn damaged_images_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.img");
        std::fs::write(&p, &USERNS[..20]).unwrap();
        assert!(rebase_userns(&p, 1).is_err());
        std::fs::write(&p, [1, 2, 3]).unwrap();
        assert!(set_hostname(&p, "x").is_err());
    }
}
