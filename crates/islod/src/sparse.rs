//! Holes kept: a sandbox may hold a file of a terabyte that takes no disk (a sparse file), and
//! what islod writes of it (a snapshot's scratch tar, an unpacked layer) must take none
//! either. Whole blocks of zeros are skipped with a seek instead of written; the file's
//! length is set at the end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// The unit checked for zeros; a multiple of every filesystem block size in use.
const BLOCK: usize = 64 * 1024;

/// A block of zeros to compare with (a `memcmp`, fast in any build).
static ZEROS: [u8; BLOCK] = [0; BLOCK];

fn zero(b: &[u8]) -> bool {
    b.len() <= BLOCK && b == &ZEROS[..b.len()]
}

/// A file written through a block buffer aligned to the file's offsets: all-zero blocks
/// become holes. Call [`SparseFile::finish`] to flush and fix the length.
pub struct SparseFile {
    file: File,
    buf: Vec<u8>,
    len: u64,
}

impl SparseFile {
    pub fn new(file: File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(BLOCK),
            len: 0,
        }
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if zero(&self.buf) {
            self.file.seek(SeekFrom::Current(self.buf.len() as i64))?;
        } else {
            self.file.write_all(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Write what is buffered and set the length (a trailing hole needs it); the file back.
    pub fn finish(mut self) -> io::Result<File> {
        self.flush_block()?;
        self.file.set_len(self.len)?;
        Ok(self.file)
    }
}

impl Write for SparseFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.len += n as u64;
        if self.buf.len() == BLOCK {
            self.flush_block()?;
        }
        Ok(n)
    }

    /// Blocks are only written whole (or by `finish`), so nothing is forced out here.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why [`copy`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("more than {0} bytes of content")]
    OverBudget(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Copy `src` into the new file `dst`, keeping zero blocks as holes; returns the bytes
/// written to disk (holes excluded), and fails once they pass `budget`.
pub fn copy(src: &mut impl Read, dst: File, budget: u64) -> Result<u64, CopyError> {
    let mut out = SparseFile::new(dst);
    let mut buf = vec![0u8; BLOCK];
    let mut written = 0u64;
    loop {
        let n = fill(src, &mut buf)?;
        if n == 0 {
            break;
        }
        if !zero(&buf[..n]) {
            written += n as u64;
            if written > budget {
                return Err(CopyError::OverBudget(budget));
            }
        }
        out.write_all(&buf[..n])?;
    }
    out.finish()?;
    Ok(written)
}

/// Read until `buf` is full or the input ends.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_content_survives() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        let mut data = vec![0u8; 64 << 20];
        data[10..15].copy_from_slice(b"hello");
        let n = data.len();
        data[n - 3..].copy_from_slice(b"end");
        let written = copy(&mut &data[..], File::create(&path).unwrap(), u64::MAX).unwrap();
        assert_eq!(written, 2 * BLOCK as u64, "two blocks hold content");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), n as u64);
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "{} bytes on disk",
            meta.blocks() * 512
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_trailing_hole_keeps_the_length_and_the_budget_holds() {
        let d = tempfile::tempdir().unwrap();
        let mut w = SparseFile::new(File::create(d.path().join("t")).unwrap());
        w.write_all(b"head").unwrap();
        w.write_all(&vec![0u8; 1 << 20]).unwrap();
        let f = w.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4 + (1 << 20));
        let big = vec![1u8; 3 * BLOCK];
        let e = copy(
            &mut &big[..],
            File::create(d.path().join("b")).unwrap(),
            100,
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than 100 bytes"), "{e}");
    }
}
