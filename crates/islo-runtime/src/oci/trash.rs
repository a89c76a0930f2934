//! Removed sandboxes' directories, deleted in the background. Deleting a sandbox's disk image
//! frees every extent it had, and on a host file system mounted with `discard` each free
//! waits for the device: ~5 ms a removal here, which the removal need not wait for. A removal
//! renames the directory into `<state>/trash/` (one rename, atomic), and a thread at idle
//! priority deletes what is there, once no create or removal is under way nor a caller's has
//! just ended (`activity.rs`);
//! what a crash left there is deleted at the next start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::DriverError;
use crate::activity::Activity;

pub(super) struct Trash {
    dir: PathBuf,
    one_at_a_time: Arc<Mutex<()>>,
    activity: Arc<Activity>,
}

impl Trash {
    /// The trash under `state_dir`, emptied of what an earlier run left.
    pub(super) fn new(state_dir: &Path, activity: Arc<Activity>) -> Result<Self, DriverError> {
        let dir = state_dir.join("trash");
        std::fs::create_dir_all(&dir).map_err(DriverError::io(dir.display().to_string()))?;
        let trash = Self {
            dir,
            one_at_a_time: Arc::default(),
            activity,
        };
        trash.empty();
        Ok(trash)
    }

    /// Take the sandbox directory `dir` (nothing mounted in it any more) out of sight now and
    /// delete it later; deleted at once if it cannot be moved.
    pub(super) fn discard(&self, dir: &Path, name: &str) -> Result<(), DriverError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let to = self.dir.join(format!("{name}.{}", now.as_nanos()));
        if std::fs::rename(dir, &to).is_err() {
            return std::fs::remove_dir_all(dir)
                .map_err(DriverError::io(dir.display().to_string()));
        }
        self.empty();
        Ok(())
    }

    /// Delete everything in the trash on a thread of its own (one such thread at a time).
    fn empty(&self) {
        let (dir, lock) = (self.dir.clone(), self.one_at_a_time.clone());
        let activity = self.activity.clone();
        let spawned = std::thread::Builder::new()
            .name("islo-trash".into())
            .spawn(move || {
                super::disk::background_priority();
                // A discard that finds this thread busy counts on it to look again.
                while first(&dir).is_some() {
                    let Ok(_held) = lock.try_lock() else {
                        return;
                    };
                    while let Some(entry) = first(&dir) {
                        activity.wait_still(crate::activity::STILL, &|| false);
                        if let Err(e) = remove(&entry) {
                            tracing::warn!(path = %entry.display(), error = %e, "emptying the trash");
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread to empty the trash; it is emptied at the next start");
        }
    }
}

fn first(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .next()
        .map(|e| e.path())
}

fn remove(path: &Path) -> std::io::Result<()> {
    match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn gone(p: &Path) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while p.exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        !p.exists()
    }

    #[test]
    fn discarded_directories_go_and_leftovers_go_at_start() {
        let state = tempfile::tempdir().unwrap();
        let left = state.path().join("trash/left.1");
        std::fs::create_dir_all(left.join("sub")).unwrap();
        std::fs::write(left.join("sub/file"), b"x").unwrap();
        let trash = Trash::new(state.path(), Arc::default()).unwrap();
        assert!(gone(&left), "what a crash left is deleted at the start");

        let sandbox = state.path().join("sandboxes/a");
        std::fs::create_dir_all(sandbox.join("disk")).unwrap();
        std::fs::write(sandbox.join("disk.img"), vec![0u8; 1 << 16]).unwrap();
        trash.discard(&sandbox, "a").unwrap();
        assert!(!sandbox.exists(), "out of sight at once");
        let end = Instant::now() + Duration::from_secs(10);
        while first(&state.path().join("trash")).is_some() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            first(&state.path().join("trash")).is_none(),
            "deleted in the background"
        );
    }
}
