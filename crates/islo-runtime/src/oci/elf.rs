//! Is a binary statically linked? The agent runs inside images that may have no libc (or a
//! different one), so a dynamically linked agent is refused up front.

use std::io::Read;
use std::path::Path;

const PT_INTERP: u32 = 3;

/// `Ok(true)` when `path` is a 64-bit little-endian ELF with no program interpreter.
pub fn is_static(path: &Path) -> std::io::Result<bool> {
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut data)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a 64-bit ELF executable",
        )
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().map_err(|_| bad())?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(raw) = data.get(at..at + 4) else {
            return Err(bad());
        };
        if u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_dynamic_binaries() {
        // The test binary itself is dynamically linked; /bin/sh on Debian too.
        let me = std::env::current_exe().unwrap();
        assert!(!super::is_static(&me).unwrap());
        assert!(super::is_static(std::path::Path::new("/etc/hostname")).is_err());
    }
}
