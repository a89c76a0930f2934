//! Host id ranges for sandboxes' user namespaces.
//!
//! Each sandbox holds a range of 65,536 host uids and gids of its own (`isolation.id_base`
//! onwards, `isolation.id_count` ids in all). A range is recorded in the store
//! (`sandboxes.id_range`, freed by `rm`) and claimed in a directory every islo installation
//! on the host shares (`isolation.id_claims_dir`): one file per range naming the installation
//! (its state directory) and the sandbox, made under an exclusive `flock`. A claim is stale,
//! and its range free again, when it names this installation and a sandbox it no longer
//! holds, or an installation whose state directory is gone. Ranges that meet `/etc/subuid`,
//! `/etc/subgid`, `/etc/passwd` or `/etc/group` ids are never handed out.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use islo_runtime::IdMap;

use crate::config::IsolationConfig;
use crate::store::StoreError;

/// Why no range was had.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error(
        "no free id range for a sandbox's user namespace: all {ranges} ranges of 65536 ids from \
         {base} are held by sandboxes (of this or another islo installation) or meet host ids \
         (/etc/subuid, /etc/passwd); delete sandboxes, or widen isolation.id_count in islod's \
         config"
    )]
    Exhausted { ranges: u32, base: u32 },
    #[error("isolation: {0}")]
    Config(String),
    #[error("id range claims in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdError + '_ {
    move |source| IdError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The installation's share of the host's ids.
#[derive(Debug, Clone)]
pub struct IdPool {
    base: u32,
    ranges: u32,
    claims: PathBuf,
    /// This installation: its state directory.
    owner: String,
    /// Ranges (indexes) that meet ids the host uses.
    reserved: BTreeSet<u32>,
}

/// Host ids in use, as `[start, end)`: subordinate ranges, users and groups.
fn host_ids(etc: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for file in ["subuid", "subgid"] {
        let text = std::fs::read_to_string(etc.join(file)).unwrap_or_default();
        for l in text.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if let (Some(s), Some(n)) = (
                f.get(1).and_then(|s| s.parse::<u64>().ok()),
                f.get(2).and_then(|s| s.parse::<u64>().ok()),
            ) {
                out.push((s, s + n));
            }
        }
    }
    for file in ["passwd", "group"] {
        let text = std::fs::read_to_string(etc.join(file)).unwrap_or_default();
        for l in text.lines() {
            if let Some(id) = l.split(':').nth(2).and_then(|s| s.parse::<u64>().ok()) {
                out.push((id, id + 1));
            }
        }
    }
    out
}

impl IdPool {
    /// The pool of `cfg` for the installation at `state_dir`, avoiding the ids `etc` (the
    /// host's `/etc`) names.
    pub fn new(cfg: &IsolationConfig, state_dir: &Path, etc: &Path) -> Result<Self, IdError> {
        let size = u64::from(IdMap::SIZE);
        let (base, count) = (u64::from(cfg.id_base), u64::from(cfg.id_count));
        if count < size || !count.is_multiple_of(size) || !cfg.id_base.is_multiple_of(IdMap::SIZE) {
            return Err(IdError::Config(format!(
                "id_base ({base}) and id_count ({count}) must be multiples of {size}, and \
                 id_count at least {size}"
            )));
        }
        if base == 0 || base + count > u64::from(u32::MAX) {
            return Err(IdError::Config(format!(
                "ids {base}..{} must lie between 1 and {}",
                base + count,
                u32::MAX
            )));
        }
        let ranges = (count / size) as u32;
        let used = host_ids(etc);
        let reserved = (0..ranges)
            .filter(|i| {
                let start = base + u64::from(*i) * size;
                used.iter().any(|(s, e)| *s < start + size && start < *e)
            })
            .collect();
        Ok(Self {
            base: cfg.id_base,
            ranges,
            claims: cfg.id_claims_dir.clone(),
            owner: state_dir.display().to_string(),
            reserved,
        })
    }

    /// The host ids of range `i`.
    pub fn map(&self, i: u32) -> IdMap {
        IdMap {
            base: self.base + i * IdMap::SIZE,
            size: IdMap::SIZE,
        }
    }

    /// The range a sandbox's map is, if it is one of this pool's.
    pub fn range_of(&self, m: &IdMap) -> Option<u32> {
        let i = m.base.checked_sub(self.base)? / IdMap::SIZE;
        (i < self.ranges && self.map(i) == *m).then_some(i)
    }

    fn claim_path(&self, i: u32) -> PathBuf {
        self.claims.join(i.to_string())
    }

    /// Hold the claims directory's lock while `f` runs.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, IdError>) -> Result<T, IdError> {
        std::fs::create_dir_all(&self.claims).map_err(io_err(&self.claims))?;
        let path = self.claims.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&path)(e.into()))?;
        f()
    }

    /// Who holds range `i`'s claim: (installation, sandbox).
    fn claimant(&self, i: u32) -> Option<(String, String)> {
        let mut text = String::new();
        std::fs::File::open(self.claim_path(i))
            .and_then(|mut f| f.read_to_string(&mut text))
            .ok()?;
        let mut l = text.lines();
        Some((l.next()?.to_string(), l.next().unwrap_or("").to_string()))
    }

    /// Whether range `i`'s claim is stale: `holder` says which sandbox of this installation
    /// holds a range.
    fn stale(
        &self,
        i: u32,
        holder: &dyn Fn(u32) -> Result<Option<String>, StoreError>,
    ) -> Result<bool, IdError> {
        Ok(match self.claimant(i) {
            None => true,
            Some((owner, _)) if owner == self.owner => holder(i)?.is_none(),
            Some((owner, _)) => !Path::new(&owner).join("islod.db").exists(),
        })
    }

    fn write_claim(&self, i: u32, sandbox: &str) -> Result<(), IdError> {
        let path = self.claim_path(i);
        islo_runtime::host::write_atomic(
            &path,
            format!("{}\n{sandbox}\n", self.owner).as_bytes(),
            0o644,
        )
        .map_err(io_err(&path))
    }

    /// Claim a free range for `sandbox` and `record` it (in the store) under the lock.
    /// `holder`: which live sandbox of this installation holds a range.
    pub fn claim(
        &self,
        sandbox: &str,
        holder: &dyn Fn(u32) -> Result<Option<String>, StoreError>,
        record: &dyn Fn(u32) -> Result<(), StoreError>,
    ) -> Result<IdMap, IdError> {
        self.locked(|| {
            let claimed: BTreeSet<u32> = std::fs::read_dir(&self.claims)
                .map_err(io_err(&self.claims))?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            let free = |i: &u32| !self.reserved.contains(i);
            let mut pick = (0..self.ranges).filter(free).find(|i| !claimed.contains(i));
            if pick.is_none() {
                for i in claimed
                    .iter()
                    .copied()
                    .filter(|i| *i < self.ranges)
                    .filter(free)
                {
                    if self.stale(i, holder)? {
                        pick = Some(i);
                        break;
                    }
                }
            }
            let i = pick.ok_or(IdError::Exhausted {
                ranges: self.ranges,
                base: self.base,
            })?;
            self.write_claim(i, sandbox)?;
            if let Err(e) = record(i) {
                let _ = std::fs::remove_file(self.claim_path(i));
                return Err(e.into());
            }
            Ok(self.map(i))
        })
    }

    /// Give back `sandbox`'s range `i` (its claim, if it is still that sandbox's).
    /// A claim left by a failure here is stale and taken again by the next claim.
    pub fn release(&self, i: u32, sandbox: &str) {
        let released = self.locked(|| {
            if self.claimant(i) == Some((self.owner.clone(), sandbox.to_string())) {
                let path = self.claim_path(i);
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
            Ok(())
        });
        if let Err(e) = released {
            tracing::warn!(sandbox, range = i, error = %e, "giving back an id range");
        }
    }

    /// At start-up: make sure each range the store holds is claimed (a claims directory
    /// lost or wiped). A range another installation claimed meanwhile is reported.
    pub fn reassert(&self, held: &[(String, IdMap)]) -> Result<(), IdError> {
        self.locked(|| {
            for (sandbox, m) in held {
                let Some(i) = self.range_of(m) else { continue };
                match self.claimant(i) {
                    Some((owner, s)) if owner == self.owner && s == *sandbox => {}
                    Some((owner, s))
                        if owner != self.owner && Path::new(&owner).join("islod.db").exists() =>
                    {
                        tracing::error!(sandbox, range = i, other = %owner, other_sandbox = %s,
                            "this sandbox's id range is claimed by another islo installation");
                    }
                    _ => self.write_claim(i, sandbox)?,
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, count: u32, etc: &Path) -> IdPool {
        let cfg = IsolationConfig {
            userns: true,
            id_base: 1 << 20,
            id_count: count,
            id_claims_dir: dir.join("claims"),
            ..Default::default()
        };
        IdPool::new(&cfg, &dir.join("state"), etc).unwrap()
    }

    #[test]
    fn ranges_are_claimed_once_across_installations_and_freed() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        // Range 1 (ids 1114112..1179648) meets a host user; range 2 a subuid entry.
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nbig:x:1114200:1::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(etc.join("subuid"), "alice:1179648:10\n").unwrap();
        let a = pool(d.path(), 5 * IdMap::SIZE, &etc);
        std::fs::create_dir_all(d.path().join("state")).unwrap();
        std::fs::write(d.path().join("state/islod.db"), "").unwrap();
        let none = |_: u32| Ok(None);
        let ok = |_: u32| Ok(());
        let first = a.claim("s1", &none, &ok).unwrap();
        assert_eq!(first.base, 1 << 20);
        // Another installation (its own state dir, alive) on the same host.
        let other = d.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("islod.db"), "").unwrap();
        let b = IdPool::new(
            &IsolationConfig {
                userns: true,
                id_base: 1 << 20,
                id_count: 5 * IdMap::SIZE,
                id_claims_dir: d.path().join("claims"),
                ..Default::default()
            },
            &other,
            &etc,
        )
        .unwrap();
        let held = |i: u32| Ok((i == 0).then(|| "s1".to_string()));
        let second = b.claim("t1", &none, &ok).unwrap();
        assert_eq!(a.range_of(&second), Some(3), "ranges 1 and 2 meet host ids");
        assert_eq!(a.claim("s2", &held, &ok).unwrap(), a.map(4));
        let err = a
            .claim("s3", &|i| Ok(Some(format!("s{i}"))), &ok)
            .unwrap_err();
        assert!(matches!(err, IdError::Exhausted { ranges: 5, .. }), "{err}");
        // The other installation's claim is not stale while it lives; it is once it is gone.
        let err = a
            .claim("s3", &|i| Ok(Some(format!("s{i}"))), &ok)
            .unwrap_err();
        assert!(err.to_string().contains("isolation.id_count"), "{err}");
        std::fs::remove_dir_all(&other).unwrap();
        assert_eq!(
            a.claim("s3", &|i| Ok(Some(format!("s{i}"))), &ok).unwrap(),
            a.map(3)
        );
        // Released: the range is free again; a failed record leaves no claim.
        a.release(a.range_of(&first).unwrap(), "s1");
        let failed = a.claim("s4", &|i| Ok((i != 0).then(|| "x".into())), &|_| {
            Err(StoreError::Exhausted("boom".into()))
        });
        assert!(failed.is_err());
        assert!(
            !d.path().join("claims/0").exists(),
            "no claim left by a failed record"
        );
    }

    #[test]
    fn claims_lost_with_their_directory_are_made_again_at_start_up() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(d.path().join("state")).unwrap();
        std::fs::write(d.path().join("state/islod.db"), "").unwrap();
        let a = pool(d.path(), 4 * IdMap::SIZE, &etc);
        let none = |_: u32| Ok(None);
        let ok = |_: u32| Ok(());
        let (m0, m1) = (
            a.claim("s0", &none, &ok).unwrap(),
            a.claim("s1", &none, &ok).unwrap(),
        );
        std::fs::remove_dir_all(d.path().join("claims")).unwrap();
        // Meanwhile another live installation took range 1.
        let other = d.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("islod.db"), "").unwrap();
        std::fs::create_dir_all(d.path().join("claims")).unwrap();
        std::fs::write(
            d.path().join("claims/1"),
            format!("{}\nt9\n", other.display()),
        )
        .unwrap();
        a.reassert(&[("s0".into(), m0), ("s1".into(), m1)]).unwrap();
        assert_eq!(
            a.claimant(0),
            Some((a.owner.clone(), "s0".into())),
            "made again"
        );
        assert_eq!(
            a.claimant(1),
            Some((other.display().to_string(), "t9".into())),
            "another installation's live claim is not taken (it is reported)"
        );
        // A range outside the pool (another configuration) is left alone.
        let outside = IdMap {
            base: 1 << 28,
            size: IdMap::SIZE,
        };
        a.reassert(&[("s2".into(), outside)]).unwrap();
        assert_eq!(
            std::fs::read_dir(d.path().join("claims")).unwrap().count(),
            3,
            ".lock, 0, 1"
        );
        // Released, the claim goes; releasing what another holds leaves it.
        a.release(0, "s0");
        a.release(1, "s1");
        assert!(a.claimant(0).is_none());
        assert!(a.claimant(1).is_some());
    }

    #[test]
    fn bad_pools_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let bad = |base, count| {
            IdPool::new(
                &IsolationConfig {
                    userns: true,
                    id_base: base,
                    id_count: count,
                    id_claims_dir: d.path().into(),
                    ..Default::default()
                },
                d.path(),
                d.path(),
            )
            .is_err()
        };
        assert!(bad(1 << 20, 1000));
        assert!(bad(12345, 1 << 16));
        assert!(bad(0, 1 << 16));
        assert!(bad(u32::MAX - (1 << 16) + 1, 1 << 17));
        assert!(!bad(1 << 30, 1 << 30));
    }
}
