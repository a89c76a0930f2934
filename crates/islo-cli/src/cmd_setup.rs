//! Following a new sandbox's setup steps while `islo use` waits: each step's output as it
//! runs (on stderr, so the command's own output stays clean), and a clear error when one fails.

use std::io::Write;
use std::time::Duration;

use islo_api::{ExecLogsQuery, SetupStepStatus};
use islo_client::Client;

use crate::{EXIT_FAILURE, Exit};

/// Print the steps of `name` until the last ends; an error when one failed.
pub async fn follow(client: &Client, name: &str) -> anyhow::Result<()> {
    let mut step = 0usize;
    let (mut header, mut seq) = (false, 0i64);
    loop {
        let sb = client.get_sandbox(name).await?;
        let steps = sb.setup_steps.unwrap_or_default();
        let Some(s) = steps.get(step) else {
            return Ok(());
        };
        match s.status {
            SetupStepStatus::Pending => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            SetupStepStatus::Skipped => {
                step += 1;
                continue;
            }
            _ => {}
        }
        if !header {
            eprintln!("==> setup: {}", s.name);
            header = true;
        }
        if let Some(id) = &s.exec_id {
            seq = print_new(client, name, id, seq).await?;
        }
        if s.status == SetupStepStatus::Running {
            tokio::time::sleep(Duration::from_millis(150)).await;
            continue;
        }
        if s.status == SetupStepStatus::Failed {
            if s.exec_id.is_none() {
                eprint!("{}", s.stderr.clone().unwrap_or_default());
            }
            let code = s
                .exit_code
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "it could not run".into());
            return Err(Exit {
                code: EXIT_FAILURE,
                message: format!(
                    "setup step {} failed ({code}); later steps were skipped. The sandbox {name} is kept: look inside with `islo use {name}`",
                    s.name
                ),
            }
            .into());
        }
        step += 1;
        (header, seq) = (false, 0);
    }
}

/// Print a step's log lines after `seq`; returns the last one printed.
async fn print_new(client: &Client, name: &str, id: &str, seq: i64) -> anyhow::Result<i64> {
    let q = ExecLogsQuery {
        after_seq: Some(seq),
        ..Default::default()
    };
    let logs = match client.exec_logs(name, id, &q).await {
        Ok(l) => l,
        // A step's recording is committed a moment after it starts (the audit log writes
        // in batches): nothing to print yet.
        Err(e) if e.code() == Some(islo_api::ErrorCode::ResourceNotFound) => return Ok(seq),
        Err(e) => return Err(e.into()),
    };
    let mut err = std::io::stderr();
    let mut last = seq;
    for l in &logs.logs {
        last = l.seq;
        if matches!(l.stream.as_str(), "stdout" | "stderr" | "islo") {
            err.write_all(l.data.as_bytes())?;
        }
    }
    err.flush()?;
    Ok(last)
}
