//! `exec`: a command run to its end (or its timeout), its result capped for a model.
//!
//! It runs as islod's background exec (`POST …/exec`), which kills the command at
//! `timeout_secs` and keeps each stream's end, and is polled until it is over: the result
//! says `timeout` outright instead of being guessed from the output.

use std::time::{Duration, Instant};

use islo_api::{ExecRequest, ExecStatus};
use serde_json::json;

use crate::args::Exec;
use crate::output::tail;
use crate::{IsloMcp, ToolError, ToolResult};

pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 60;
pub(crate) const MAX_TIMEOUT_SECS: u64 = 3600;
const DEFAULT_OUTPUT_BYTES: usize = 64 * 1024;
/// Past its own timeout, how long islod may take to report the kill before the call gives
/// up on it.
const GRACE: Duration = Duration::from_secs(30);

/// The next wait between polls: quick at first (most commands are short), then slower.
fn next_poll(d: Duration) -> Duration {
    (d * 2).min(Duration::from_millis(250))
}

impl IsloMcp {
    pub(crate) async fn exec(&self, a: Exec) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        let timeout = a
            .timeout_secs
            .unwrap_or(DEFAULT_TIMEOUT_SECS)
            .clamp(1, MAX_TIMEOUT_SECS);
        let max = a.max_output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES);
        let argv = a.command.argv();
        if argv.is_empty() {
            return Err(ToolError::Failed("`command` is empty".into()));
        }
        let req = ExecRequest {
            command: argv,
            env: a.env,
            timeout_secs: Some(timeout),
            user: a.user,
            workdir: a.cwd,
            stream_encoding: None,
        };
        let started = self.client.exec(&a.sandbox, &req).await?;
        let deadline = Instant::now() + Duration::from_secs(timeout) + GRACE;
        let mut wait = Duration::from_millis(10);
        let r = loop {
            tokio::time::sleep(wait).await;
            wait = next_poll(wait);
            let r = self
                .client
                .exec_result(&a.sandbox, &started.exec_id)
                .await?;
            if r.status != ExecStatus::Running {
                break r;
            }
            if Instant::now() > deadline {
                return Err(ToolError::Failed(format!(
                    "the command (exec {}) did not end {}s after its timeout; islo logs show it",
                    started.exec_id,
                    GRACE.as_secs()
                )));
            }
        };
        let (stdout, cut_out) = tail(r.stdout.as_bytes(), max);
        let (stderr, cut_err) = tail(r.stderr.as_bytes(), max);
        Ok(json!({
            "exec_id": r.exec_id,
            "exit_code": r.exit_code,
            "timed_out": r.status == ExecStatus::Timeout,
            "stdout": stdout,
            "stderr": stderr,
            // islod keeps the last MiB of each stream; this cap comes on top.
            "truncated": r.truncated || cut_out || cut_err,
            "status": r.status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_speed_down_to_a_quarter_second() {
        let mut d = Duration::from_millis(10);
        for _ in 0..10 {
            d = next_poll(d);
        }
        assert_eq!(d, Duration::from_millis(250));
    }
}
