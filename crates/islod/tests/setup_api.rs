//! Setup scripts over the API with the fake back end (which has no bash): the steps are
//! reported in order, the failure carries its exit code and output, the rest are skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{SetupScript, SetupStepStatus};

#[tokio::test]
async fn steps_are_reported_and_the_first_failure_skips_the_rest() {
    let s = server().await;
    let a = s.client("alpha");
    let mut req = create("setup");
    req.setup_scripts = Some(vec![
        SetupScript {
            name: Some("deps".into()),
            script: "true".into(),
        },
        SetupScript {
            name: None,
            script: "true".into(),
        },
    ]);
    let sb = a.create_sandbox(&req).await.unwrap();
    let first = sb.setup_steps.unwrap();
    assert_eq!(
        first.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["deps", "step-2"]
    );
    let mut steps = first;
    for _ in 0..100 {
        steps = a.get_sandbox("setup").await.unwrap().setup_steps.unwrap();
        if steps
            .iter()
            .all(|s| s.status != SetupStepStatus::Pending && s.status != SetupStepStatus::Running)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        (steps[0].status.as_str(), steps[0].exit_code),
        ("failed", Some(127))
    );
    // The fake back end runs no shell, so the first step fails as a missing command.
    assert!(
        steps[0]
            .stderr
            .as_deref()
            .unwrap_or("")
            .contains("sh: command not found"),
        "{:?}",
        steps[0]
    );
    assert!(steps[0].exec_id.is_some(), "the step is in the audit log");
    assert_eq!(steps[1].status, SetupStepStatus::Skipped);
    let plain = a.create_sandbox(&create("plain")).await.unwrap();
    assert!(plain.setup_steps.is_none());
}
