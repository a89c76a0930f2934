//! Setup scripts: run once after a sandbox is created, in order, as the sandbox user in
//! `/workspace` with bash (`sh`, said so, in images without bash: busybox, alpine), each
//! recorded in the audit log like any exec. The first failure
//! skips the rest. Results are kept per step; the CLI follows them while `islo use` waits.

use std::sync::Arc;

use islo_api::{
    CreationPhase, ExecRequest, SandboxResponse, SetupScript, SetupStepResult, SetupStepStatus,
};

use super::exec::TailBuf;
use super::stream::ExecEvent;
use super::{App, AppError, Tenant};
use crate::store::SandboxRow;

/// Run the script (`$1`) with bash, or with sh where the image has no bash.
const BASH_OR_SH: &str = "if command -v bash >/dev/null 2>&1; then exec bash -c \"$1\"; fi; \
    echo 'islo: this image has no bash; running the setup script with sh' >&2; exec sh -c \"$1\"";

/// Output kept per step and stream.
const STEP_TAIL: usize = 64 * 1024;

/// Step names: given, else `step-N`.
pub fn step_names(scripts: &[SetupScript]) -> Vec<String> {
    scripts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("step-{}", i + 1))
        })
        .collect()
}

impl App {
    /// The API view of a sandbox, with its setup steps.
    pub fn view(&self, row: &SandboxRow) -> Result<SandboxResponse, AppError> {
        let mut v = super::sandboxes::to_response(row);
        if let Some(w) = v.isolation.as_mut().and_then(|i| i.warning.as_mut()) {
            w.push_str(match self.settings.ids {
                Some(_) => "; stop and start it to move it into one",
                None => "; isolation.userns is false in islod's config",
            });
        }
        let steps = self.store.setup_steps(&row.id)?;
        v.setup_steps = (!steps.is_empty()).then_some(steps);
        v.creation_phase = Some(self.creation_phase(row).as_str().to_string());
        Ok(v)
    }

    /// Record the steps and run them in the background.
    pub(super) fn start_setup(
        self: &Arc<Self>,
        t: &Tenant,
        row: &SandboxRow,
        scripts: Vec<SetupScript>,
    ) -> Result<(), AppError> {
        let names = step_names(&scripts);
        self.store.insert_setup_steps(&row.id, &names)?;
        let (app, t, row) = (self.clone(), t.clone(), row.clone());
        tokio::spawn(async move {
            let mut failed = None;
            for (i, (script, name)) in scripts.into_iter().zip(names).enumerate() {
                app.phase(&row.id, CreationPhase::Setup, Some(name.clone()));
                let ok = app.run_step(&t, &row, i, name.clone(), script.script).await;
                if !ok {
                    app.skip_rest(&row, i + 1);
                    failed = Some(name);
                    break;
                }
            }
            match failed {
                None => app.phase(&row.id, CreationPhase::Ready, None),
                Some(n) => {
                    let why = format!("setup step {n} failed (see setup_steps)");
                    app.phase(&row.id, CreationPhase::Failed, Some(why));
                }
            }
        });
        Ok(())
    }

    /// Run one step; whether it succeeded.
    async fn run_step(
        &self,
        t: &Tenant,
        row: &SandboxRow,
        idx: usize,
        name: String,
        script: String,
    ) -> bool {
        let req = ExecRequest {
            command: ["sh", "-c", BASH_OR_SH, "islo-setup", &script]
                .map(String::from)
                .to_vec(),
            workdir: Some("/workspace".into()),
            ..Default::default()
        };
        let mut result = SetupStepResult {
            name,
            status: SetupStepStatus::Running,
            ..Default::default()
        };
        let (mut rx, exec_id) = match self.exec_stream(t, &row.name, &req) {
            Ok((_, rx, id)) => (rx, id),
            Err(e) => {
                result.status = SetupStepStatus::Failed;
                result.stderr = Some(e.to_string());
                self.record_step(&row.id, idx, &result);
                return false;
            }
        };
        result.exec_id = Some(exec_id);
        self.record_step(&row.id, idx, &result);
        let (mut out, mut err) = (TailBuf::new(STEP_TAIL), TailBuf::new(STEP_TAIL));
        let mut code = None;
        while let Some(ev) = rx.recv().await {
            match ev {
                ExecEvent::Stdout(b) => out.push(&b),
                ExecEvent::Stderr(b) => err.push(&b),
                ExecEvent::Exit(c) => {
                    code = Some(c);
                    break;
                }
                ExecEvent::Error(m) => {
                    err.push(format!("islo: {m}\n").as_bytes());
                    break;
                }
                ExecEvent::TimedOut => {}
            }
        }
        let text = |b: TailBuf| Some(String::from_utf8_lossy(&b.into_vec()).into_owned());
        result.stdout = text(out);
        result.stderr = text(err);
        result.exit_code = code;
        result.status = if code == Some(0) {
            SetupStepStatus::Succeeded
        } else {
            SetupStepStatus::Failed
        };
        tracing::info!(sandbox = %row.name, step = %result.name, status = %result.status, "setup step");
        self.record_step(&row.id, idx, &result);
        code == Some(0)
    }

    /// Store a step's result; a failure to is logged (the step itself goes on).
    fn record_step(&self, sandbox: &str, idx: usize, result: &islo_api::SetupStepResult) {
        if let Err(e) = self.store.set_setup_step(sandbox, idx, result) {
            tracing::warn!(sandbox, step = %result.name, error = %e, "recording a setup step");
        }
    }

    fn skip_rest(&self, row: &SandboxRow, from: usize) {
        let steps = self.store.setup_steps(&row.id).unwrap_or_default();
        for (i, mut s) in steps.into_iter().enumerate().skip(from) {
            s.status = SetupStepStatus::Skipped;
            self.record_step(&row.id, i, &s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_their_position() {
        let s = |n: Option<&str>| SetupScript {
            name: n.map(str::to_string),
            script: "true".into(),
        };
        assert_eq!(
            step_names(&[s(Some("deps")), s(None), s(Some(" "))]),
            ["deps", "step-2", "step-3"]
        );
    }
}
