//! Zombie reaping for PID 1, and exit-status delivery to the exec that started a child.
//!
//! A single thread calls `wait(-1)`. Children we spawned are registered under the same lock
//! that covers their spawn, so an exit is never reported before its registration.

use std::collections::HashMap;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use islo_agent::ExitStatus;
use rustix::process::{WaitId, WaitIdOptions, WaitOptions, wait, waitid};

struct Table {
    waiting: HashMap<i32, Sender<ExitStatus>>,
    live: usize,
}

fn table() -> &'static (Mutex<Table>, Condvar) {
    static T: OnceLock<(Mutex<Table>, Condvar)> = OnceLock::new();
    T.get_or_init(|| {
        (
            Mutex::new(Table {
                waiting: HashMap::new(),
                live: 0,
            }),
            Condvar::new(),
        )
    })
}

fn lock() -> MutexGuard<'static, Table> {
    table().0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start the reaper thread.
pub fn start() {
    std::thread::spawn(reap_forever);
}

/// Spawn a child with `spawn` while holding the table lock, and register it.
pub fn spawn_registered<F>(
    spawn: F,
) -> std::io::Result<(std::process::Child, std::sync::mpsc::Receiver<ExitStatus>)>
where
    F: FnOnce() -> std::io::Result<std::process::Child>,
{
    let mut t = lock();
    let child = spawn()?;
    let (tx, rx) = channel();
    t.waiting.insert(child.id() as i32, tx);
    t.live += 1;
    table().1.notify_all();
    Ok((child, rx))
}

/// Reap every child, delivering the exit status of those an exec waits for.
///
/// The reaper first waits for an exit *without* reaping (`WNOWAIT`), then reaps under the
/// table lock. `Command::spawn` reaps a child whose `exec` failed itself, and it runs under
/// that lock ([`spawn_registered`]): reaping that child here first made spawn panic ("wait()
/// should either return Ok or panic"), which dropped the connection, and islod reported "the
/// sandbox's terminal went away" instead of "command not found" whenever an orphan (a
/// `nohup … &`) kept this thread waiting.
fn reap_forever() {
    loop {
        match waitid(WaitId::All, WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                // ECHILD: nothing to reap until an exec spawns a child.
                let t = lock();
                let _unused = table()
                    .1
                    .wait_while(t, |t| t.live == 0)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
        }
        let mut t = lock();
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            let st = match (status.exit_status(), status.terminating_signal()) {
                (Some(code), _) => ExitStatus { code, signal: None },
                (None, Some(sig)) => ExitStatus {
                    code: 128 + sig,
                    signal: Some(sig),
                },
                _ => continue,
            };
            if let Some(tx) = t.waiting.remove(&pid.as_raw_nonzero().get()) {
                t.live = t.live.saturating_sub(1);
                let _ = tx.send(st);
            }
        }
    }
}
