//! How islod learns that a sandbox's PID 1 ended without asking it: a pidfd of the process the
//! runtime recorded as the sandbox's init (crun's `status`, runc's `state.json`), checked
//! against the start time recorded with it, so a pid the kernel has since given to another
//! process is never taken for the agent.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// The pid and start time (clock ticks since boot, `/proc/PID/stat`'s 22nd field) of the
/// init process recorded under the runtime's state directory of one container (also what a
/// checkpoint dumps).
pub(super) fn recorded(state: &Path) -> Option<(i32, u64)> {
    for (file, pid, start) in [
        ("status", "pid", "process-start-time"),
        ("state.json", "init_process_pid", "init_process_start"),
    ] {
        let Ok(text) = std::fs::read_to_string(state.join(file)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = i32::try_from(v[pid].as_u64()?).ok()?;
        return Some((pid, v[start].as_u64()?));
    }
    None
}

/// A process's start time, from `/proc/PID/stat`, as the runtime records it.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; field 3 follows the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process behind `fd` has ended.
fn has_ended(fd: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// A pidfd of the init process recorded in `state`, `None` when there is no record or the
/// pid now belongs to another process.
pub(super) fn end_notice(state: &Path) -> Option<OwnedFd> {
    let (raw, start) = recorded(state)?;
    let fd = pidfd_open(Pid::from_raw(raw)?, PidfdFlags::empty()).ok()?;
    // Read after the pidfd is held: while its process lives, the pid is that process's.
    // If it ended meanwhile, the agent ended (the notice is already readable).
    let now = u32::try_from(raw).ok().and_then(start_time);
    (now == Some(start) || has_ended(&fd)).then_some(fd)
}

/// Kill the init process recorded in `state` (the kernel then ends every process of its pid
/// namespace) and wait up to `limit` for it to end. The runtime's `delete --force` kills too,
/// but finding the sandbox's cgroups still busy with the dying it sleeps ~10 ms before trying
/// again; once they are gone, its removal goes straight through.
pub(super) fn end_now(state: &Path, limit: std::time::Duration) {
    let Some(fd) = end_notice(state) else {
        return;
    };
    if rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).is_err() {
        return;
    }
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let Ok(limit) = rustix::event::Timespec::try_from(limit) else {
        return;
    };
    let _ = rustix::event::poll(&mut fds, Some(&limit));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_process_is_watched_and_its_end_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let start = start_time(child.id()).unwrap();
        let record = |start: u64| {
            let v = serde_json::json!({"pid": child.id(), "process-start-time": start});
            std::fs::write(dir.path().join("status"), v.to_string()).unwrap();
        };
        record(start + 1);
        assert!(
            end_notice(dir.path()).is_none(),
            "another process's start time"
        );
        record(start);
        let fd = end_notice(dir.path()).unwrap();
        assert!(!has_ended(&fd));
        end_now(dir.path(), std::time::Duration::from_secs(5));
        assert!(has_ended(&fd), "ended, and waited for");
        child.wait().unwrap();
        assert!(end_notice(dir.path()).is_none(), "a pid that is gone");
    }

    #[test]
    fn runc_records_are_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let v = serde_json::json!({"init_process_pid": 42, "init_process_start": 7});
        std::fs::write(dir.path().join("state.json"), v.to_string()).unwrap();
        assert_eq!(recorded(dir.path()), Some((42, 7)));
        assert_eq!(recorded(&dir.path().join("none")), None);
    }
}
