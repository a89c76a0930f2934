//! Output for a model to read: long text cut to its end, with the cut said in the text
//! itself (a model reads the text, not only the flags), bytes as text or base64.

use base64::Engine;

/// The last `max` bytes of `bytes` as text (invalid UTF-8 replaced), and whether anything
/// was cut; a cut is marked by a first line saying how much.
pub fn tail(bytes: &[u8], max: usize) -> (String, bool) {
    if bytes.len() <= max {
        return (String::from_utf8_lossy(bytes).into_owned(), false);
    }
    let cut = bytes.len() - max;
    let mut rest = &bytes[cut..];
    // Start at a character, not inside one.
    while let Some((&b, tail)) = rest.split_first() {
        if b & 0xC0 != 0x80 {
            break;
        }
        rest = tail;
    }
    let dropped = bytes.len() - rest.len();
    (
        format!(
            "[islo: the first {dropped} bytes are cut; the last {} follow]\n{}",
            rest.len(),
            String::from_utf8_lossy(rest)
        ),
        true,
    )
}

/// Terminal output as plain lines: CR LF becomes LF.
pub fn terminal_text(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// File content as `(text, encoding)`: UTF-8 text as is unless base64 is asked for.
pub fn content(bytes: Vec<u8>, want_base64: bool) -> (String, &'static str) {
    let bytes = if want_base64 {
        bytes
    } else {
        match String::from_utf8(bytes) {
            Ok(s) => return (s, "utf8"),
            Err(e) => e.into_bytes(),
        }
    };
    (
        base64::engine::general_purpose::STANDARD.encode(bytes),
        "base64",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_whole() {
        assert_eq!(tail(b"abc", 3), ("abc".to_string(), false));
    }

    #[test]
    fn long_output_keeps_its_end_and_says_so() {
        let (t, cut) = tail(b"0123456789", 4);
        assert!(cut);
        assert!(t.ends_with("\n6789"), "{t}");
        assert!(t.starts_with("[islo: the first 6 bytes are cut"), "{t}");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let s = "aé".repeat(10);
        let (t, cut) = tail(s.as_bytes(), 5);
        assert!(cut && !t.contains('\u{FFFD}'), "{t}");
    }

    #[test]
    fn terminal_line_ends_become_plain() {
        assert_eq!(terminal_text(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }

    #[test]
    fn binary_content_is_base64() {
        assert_eq!(content(b"hi".to_vec(), false), ("hi".into(), "utf8"));
        assert_eq!(content(vec![0xff, 0], false), ("/wA=".into(), "base64"));
        assert_eq!(content(b"hi".to_vec(), true), ("aGk=".into(), "base64"));
    }
}
