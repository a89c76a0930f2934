//! Preparing the host for sandboxes: choosing the runtime, working around this machine's
//! cgroup quirks, tuning cgroup migration latency, and raising the host's shared limits.

use std::path::{Path, PathBuf};

use crate::DriverError;
use crate::host::Host;

pub fn find_program(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

/// crun when it can run here, else runc.
pub fn choose_runtime(host: &dyn Host) -> Result<PathBuf, DriverError> {
    if let Some(crun) = find_program(Path::new("crun")) {
        match fix_hybrid_cgroups(host) {
            Ok(()) => return Ok(crun),
            Err(e) => {
                tracing::warn!(error = %e, "crun cannot run on this host's cgroups; trying runc")
            }
        }
    }
    find_program(Path::new("runc"))
        .ok_or_else(|| DriverError::Host("no OCI runtime found: install crun or runc".into()))
}

/// crun refuses cgroup v1 hybrid hosts whose cgroup2 mount still owns a controller
/// (`hugetlb` here). Moving that controller to its own v1 hierarchy fixes it.
fn fix_hybrid_cgroups(host: &dyn Host) -> Result<(), String> {
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() || !unified.exists() {
        return Ok(()); // pure v2 or pure v1
    }
    let controllers = std::fs::read_to_string(unified).map_err(|e| e.to_string())?;
    for ctrl in controllers.split_whitespace() {
        let target = PathBuf::from("/sys/fs/cgroup").join(ctrl);
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let out = host
            .run(
                Path::new("mount"),
                &[
                    "-t".into(),
                    "cgroup".into(),
                    "-o".into(),
                    ctrl.into(),
                    "cgroup".into(),
                    target.clone().into(),
                ],
            )
            .map_err(|e| e.to_string())?;
        if !out.success {
            return Err(format!(
                "moving cgroup controller {ctrl} to v1: {}",
                out.stderr.trim()
            ));
        }
        tracing::info!(
            controller = ctrl,
            "moved cgroup controller off cgroup2 for crun"
        );
    }
    Ok(())
}

/// Put the cgroup2 mount in `favordynmods` mode. Moving a process into a cgroup (every
/// sandbox start) otherwise waits for an RCU grace period whenever the kernel's thread-group
/// lock has gone idle: measured here, `crun run -d` takes ~20 ms instead of ~10 ms. The cost is
/// a slightly slower fork and exit host-wide. Failure only costs latency, so it is logged.
pub fn favor_dynmods(host: &dyn Host) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (target, fstype, opts) = (fields[4], fields.get(sep + 1), fields.get(sep + 3));
        if fstype != Some(&"cgroup2") || opts.is_some_and(|o| o.contains("favordynmods")) {
            continue;
        }
        let args = ["-o".into(), "remount,favordynmods".into(), target.into()];
        match host.run(Path::new("mount"), &args) {
            Ok(o) if o.success => {
                tracing::info!(mount = target, "cgroup2 remounted with favordynmods")
            }
            Ok(o) => tracing::warn!(
                mount = target,
                error = o.stderr.trim(),
                "cannot set favordynmods"
            ),
            Err(e) => tracing::warn!(mount = target, error = %e, "cannot set favordynmods"),
        }
    }
}

/// Bytes of kernel memory an open file costs at the least (a `struct file`): what sizes the
/// host's file table so that memory, not a count, bounds it.
pub const MIN_FILE_BYTES: u64 = 256;

/// The file table size that lets memory alone bound open files: all of RAM in files.
pub fn wanted_file_max(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024 / MIN_FILE_BYTES)
}

/// What systemd sets `kernel.pid_max` to on 64-bit hosts, and the kernel's own ceiling.
pub const PID_MAX: u64 = 4_194_304;

/// Raise the host's limits that sandboxes share to what systemd hosts run with:
/// `fs.file-max` to [`wanted_file_max`] (each sandbox's open files are charged to its memory
/// cgroup, so its memory limit bounds them, while the kernel's default table, sized for 1 KiB
/// a file, would let a few sandboxes leave the host unable to open a file) and
/// `kernel.pid_max` to [`PID_MAX`] (at the kernel's default of 32,768, 28 sandboxes at the
/// default pids limit would use every pid). Lower values only are raised.
pub fn fit_host_limits() {
    if let Some(want) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| wanted_file_max(&m))
    {
        raise("/proc/sys/fs/file-max", want);
    }
    raise("/proc/sys/kernel/pid_max", PID_MAX);
}

fn raise(path: &str, want: u64) {
    let have: u64 = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if have >= want {
        return;
    }
    match std::fs::write(path, want.to_string()) {
        Ok(()) => tracing::info!(sysctl = path, from = have, to = want, "raised"),
        Err(e) => tracing::warn!(sysctl = path, error = %e, have, want, "cannot raise"),
    }
}

#[cfg(test)]
mod file_max_tests {
    #[test]
    fn all_of_memory_in_files() {
        let m = "MemTotal:       24661936 kB\nMemFree: 1 kB\n";
        assert_eq!(super::wanted_file_max(m), Some(24661936 * 4));
        assert_eq!(super::wanted_file_max("nothing"), None);
    }
}
