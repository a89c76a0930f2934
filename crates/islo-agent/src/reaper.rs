//! Zombie reaping for PID 1, and exit-status delivery to the exec that started a child.
//!
//! A single thread calls `wait(-1)`. Children we spawned are registered under the same lock
//! that covers their spawn, so an exit is never reported before its registration.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use islo_agent::ExitStatus;
use rustix::process::{Pid, WaitId, WaitIdOptions, WaitOptions, wait, waitid};

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

/// Start a child with `spawn`, which calls its argument with the child's pid as soon as it
/// has one: that registers the child under the table lock, which `spawn` holds until then,
/// so its exit is never reaped unseen. What follows (waiting for the command's exec) runs
/// without the lock.
pub fn spawn_registered<T>(
    spawn: impl FnOnce(&mut dyn FnMut(Pid)) -> std::io::Result<T>,
) -> std::io::Result<(T, Receiver<ExitStatus>)> {
    let (tx, rx) = channel();
    let mut held = Some((lock(), tx));
    let started = spawn(&mut |pid: Pid| {
        if let Some((mut t, tx)) = held.take() {
            t.waiting.insert(pid.as_raw_nonzero().get(), tx);
            t.live += 1;
            table().1.notify_all();
        }
    })?;
    Ok((started, rx))
}

/// Reap every child, delivering the exit status of those an exec waits for.
///
/// The reaper first waits for an exit *without* reaping (`WNOWAIT`), then reaps under the
/// table lock, so a child is registered ([`spawn_registered`]) before its exit is taken.
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
