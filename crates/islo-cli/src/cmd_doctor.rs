//! `islo doctor`: what is wrong and what to do. Checks here (the project file, reaching islod,
//! the credentials) and islod's own report on its host (runtime, user namespaces, cgroups,
//! nftables, gateway, registry mirrors, disk).

use islo_api::DoctorCheck;

use crate::cli::Output;
use crate::connect;

fn check(name: &str, r: Result<String, (String, &str)>) -> DoctorCheck {
    match r {
        Ok(detail) => DoctorCheck {
            name: name.into(),
            ok: true,
            detail,
            fix: None,
        },
        Err((detail, fix)) => DoctorCheck {
            name: name.into(),
            ok: false,
            detail,
            fix: Some(fix.into()),
        },
    }
}

/// Run the checks; exit 0 when all pass, else 125.
pub async fn run(
    config: Option<&std::path::Path>,
    no_config: bool,
    output: Output,
) -> anyhow::Result<i32> {
    let mut checks = vec![check(
        "project",
        match crate::project::load(config, no_config) {
            Ok(Some(_)) => Ok("islo.yaml parses".into()),
            Ok(None) => Ok("no islo.yaml here (none needed)".into()),
            Err(e) => Err((
                format!("{e:#}"),
                "fix islo.yaml (see the README's islo.yaml fields)",
            )),
        },
    )];
    match connect::client().await {
        Err(e) => checks.push(check(
            "server",
            Err((
                format!("{e:#}"),
                "start islod, or set ISLO_BASE_URL to a running one",
            )),
        )),
        Ok(client) => {
            let endpoint = client.endpoint().to_string();
            match client.system().await {
                Ok(info) => {
                    checks.push(check(
                        "server",
                        Ok(format!(
                            "islod {} at {endpoint}, runtime {}",
                            info.version, info.runtime
                        )),
                    ));
                    checks.push(check("auth", Ok(format!("tenant {}", info.tenant))));
                    match client.doctor().await {
                        Ok(r) => checks.extend(r.checks),
                        Err(e) => checks.push(check(
                            "server_checks",
                            Err((e.to_string(), "upgrade islod: it predates `islo doctor`")),
                        )),
                    }
                }
                Err(e) if e.code() == Some(islo_api::ErrorCode::AuthRequired) => {
                    checks.push(check(
                        "auth",
                        Err((
                            e.to_string(),
                            "set ISLO_API_KEY or run `islo login --api-key`",
                        )),
                    ))
                }
                Err(e) => checks.push(check(
                    "server",
                    Err((
                        format!("{endpoint}: {e}"),
                        "check that islod runs and is reachable there",
                    )),
                )),
            }
        }
    }
    let all_ok = checks.iter().all(|c| c.ok);
    if output == Output::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": all_ok, "checks": checks}))?
        );
    } else {
        for c in &checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            outln!("{mark} {:<16} {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                outln!("     {:<16} fix: {f}", "");
            }
        }
    }
    Ok(if all_ok { 0 } else { crate::EXIT_FAILURE })
}
