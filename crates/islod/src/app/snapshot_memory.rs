//! A memory snapshot's checkpoint in a snapshot archive: one tar blob, named by the manifest's
//! [`CHECKPOINT_ANNOTATION`] (OCI tools that copy images by their layers leave it behind).
//!
//! CRIU restores a checkpoint as root and does not treat its images as hostile input: one from
//! elsewhere is unpacked only when the importer says it trusts the archive's maker
//! (`trust_memory`); otherwise the files are imported alone. Either way the tar is checked:
//! regular files only, in the checkpoint's own layout (`*.img` and logs at its top,
//! `runtime/` and `run/` below), within a size bound.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::AppError;

/// The manifest annotation naming the checkpoint blob.
pub const CHECKPOINT_ANNOTATION: &str = "dev.islo.snapshot.checkpoint";
/// The largest checkpoint an archive may carry.
const MAX_CHECKPOINT_BYTES: u64 = 64 << 30;
/// Directories a checkpoint holds beside its images.
const SUBDIRS: &[&str] = &["runtime", "run"];

fn io(what: &'static str) -> impl Fn(std::io::Error) -> AppError {
    move |e| AppError::Internal(format!("{what}: {e}"))
}

/// The checkpoint in `dir` as a tar in a scratch file under `scratch` (rewound), with its
/// sha256 (hex) and length.
pub fn pack(dir: &Path, scratch: &Path) -> Result<(File, String, u64), AppError> {
    let mut f = tempfile::tempfile_in(scratch).map_err(io("scratch file"))?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(&mut f));
        tar.mode(tar::HeaderMode::Deterministic);
        for sub in std::iter::once(None).chain(SUBDIRS.iter().map(Some)) {
            let here = sub.map_or_else(|| dir.to_path_buf(), |s| dir.join(s));
            let Ok(entries) = std::fs::read_dir(&here) else {
                continue;
            };
            for e in entries {
                let e = e.map_err(io("reading the checkpoint"))?;
                if !e
                    .file_type()
                    .map_err(io("reading the checkpoint"))?
                    .is_file()
                {
                    continue;
                }
                let name = match sub {
                    Some(s) => Path::new(s).join(e.file_name()),
                    None => e.file_name().into(),
                };
                tar.append_path_with_name(e.path(), name)
                    .map_err(io("writing the checkpoint"))?;
            }
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io("writing the checkpoint"))?;
    }
    f.rewind().map_err(io("scratch file"))?;
    let mut h = Sha256::new();
    let len = std::io::copy(&mut f, &mut h).map_err(io("hashing the checkpoint"))?;
    f.rewind().map_err(io("scratch file"))?;
    Ok((f, hex::encode(h.finalize()), len))
}

/// Whether `name` (an entry of a checkpoint tar) has the checkpoint's layout.
fn allowed(name: &Path) -> bool {
    let parts: Vec<Component> = name.components().collect();
    match parts.as_slice() {
        [Component::Normal(_)] => true,
        [Component::Normal(d), Component::Normal(_)] => SUBDIRS.iter().any(|s| *d == *s),
        _ => false,
    }
}

/// Unpack the checkpoint tar `blob` into `dest` (made here), refusing anything else.
pub fn unpack(blob: &Path, dest: &Path) -> Result<(), AppError> {
    let bad = |m: String| AppError::Validation(format!("the archive's checkpoint: {m}"));
    let len = std::fs::metadata(blob).map_err(io("the checkpoint"))?.len();
    if len > MAX_CHECKPOINT_BYTES {
        return Err(bad(format!("{len} bytes is more than a checkpoint holds")));
    }
    std::fs::create_dir_all(dest).map_err(io("the checkpoint"))?;
    let mut a = tar::Archive::new(File::open(blob).map_err(io("the checkpoint"))?);
    for entry in a.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        if !allowed(&name) || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!(
                "{} is not a file of a checkpoint",
                name.display()
            )));
        }
        let to = dest.join(&name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("the checkpoint"))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&to)
            .map_err(|e| bad(format!("{}: {e}", name.display())))?;
        std::io::copy(&mut entry, &mut out).map_err(io("unpacking the checkpoint"))?;
        // CRIU reads images from inside the restored user namespace.
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(io("the checkpoint"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_foreign_entries_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let ck = d.path().join("ck");
        std::fs::create_dir_all(ck.join("runtime")).unwrap();
        std::fs::create_dir_all(ck.join("run")).unwrap();
        std::fs::write(ck.join("core-1.img"), b"core").unwrap();
        std::fs::write(ck.join("runtime/status"), b"{}").unwrap();
        std::fs::write(ck.join("run/agent.log"), b"log").unwrap();
        let (mut f, hex, len) = pack(&ck, d.path()).unwrap();
        assert_eq!(hex.len(), 64);
        let blob = d.path().join("blob");
        let mut out = File::create(&blob).unwrap();
        assert_eq!(std::io::copy(&mut f, &mut out).unwrap(), len);
        let back = d.path().join("back");
        unpack(&blob, &back).unwrap();
        assert_eq!(std::fs::read(back.join("core-1.img")).unwrap(), b"core");
        assert_eq!(std::fs::read(back.join("run/agent.log")).unwrap(), b"log");

        for evil in ["../escape", "etc/passwd", "runtime/../../x", "/abs"] {
            let mut t = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw, as a hostile archive has it (set_path refuses these).
            h.as_old_mut().name[..evil.len()].copy_from_slice(evil.as_bytes());
            h.set_cksum();
            t.append(&h, &b"x"[..]).unwrap();
            let p = d.path().join("evil");
            std::fs::write(&p, t.into_inner().unwrap()).unwrap();
            let dest = d.path().join(format!("e{}", evil.len()));
            assert!(unpack(&p, &dest).is_err(), "{evil} was taken");
        }
    }
}
