//! `sources`: git repositories cloned into `/workspace/<repo>` when a sandbox is created, as
//! the run-as user, through the sandbox's own network path (so the gateway's rules and
//! credentials apply). `github://owner/repo[:branch]` means `<github_base_url>/owner/repo.git`.
//! A failed clone fails the create.

use islo_api::{ExecRequest, SourceSpec};

use super::stream::ExecEvent;
use super::{App, AppError, Tenant};
use crate::store::SandboxRow;

/// Most of git's error output kept for the message.
const ERR_TAIL: usize = 2000;

/// A repository to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clone {
    pub url: String,
    pub branch: Option<String>,
    /// Directory under `/workspace`.
    pub dir: String,
}

/// `URL[:branch]`, where a `:` after the last `/` starts a branch.
fn split_branch(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((url, b)) if !b.contains('/') && url.contains("://") && !b.is_empty() => {
            (url, Some(b))
        }
        _ => (s, None),
    }
}

fn bad(what: &str, why: &str) -> AppError {
    AppError::Validation(format!(
        "source {what:?} {why}: use github://owner/repo[:branch] or https://host/path/repo.git[:branch]"
    ))
}

/// One component of a clone's directory.
fn dir_part_ok(p: &str) -> bool {
    !p.is_empty()
        && p != "."
        && p != ".."
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A `target_path` as a directory relative to `/workspace`, if it stays inside it.
fn target_dir(t: &str) -> Option<String> {
    let rel = match t.strip_prefix('/') {
        Some(abs) => abs.strip_prefix("workspace/")?,
        None => t,
    };
    let parts: Vec<&str> = rel.trim_end_matches('/').split('/').collect();
    parts
        .iter()
        .all(|p| dir_part_ok(p))
        .then(|| parts.join("/"))
}

/// Resolve and check `sources`.
pub fn parse(sources: &[SourceSpec], github_base: &str) -> Result<Vec<Clone>, AppError> {
    let mut out: Vec<Clone> = Vec::new();
    for s in sources {
        let (raw, inline_branch) = split_branch(s.url.trim());
        let branch = s.branch.clone().or(inline_branch.map(str::to_string));
        let url = if let Some(path) = raw.strip_prefix("github://") {
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(bad(&s.url, "must name owner/repo"));
            }
            format!(
                "{}/{}/{}.git",
                github_base.trim_end_matches('/'),
                parts[0],
                parts[1].trim_end_matches(".git")
            )
        } else if raw.starts_with("https://") || raw.starts_with("http://") {
            raw.to_string()
        } else {
            return Err(bad(
                &s.url,
                "is not a supported URL (only HTTPS reaches out through the gateway)",
            ));
        };
        let dir = match &s.target_path {
            Some(t) => target_dir(t).ok_or_else(|| {
                AppError::Validation(format!(
                    "sources: target_path {t:?} must be a path inside /workspace (relative to \
                     it, or absolute under it) of letters, digits, '.', '_' and '-'"
                ))
            })?,
            None => {
                let name = url
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".git");
                if !dir_part_ok(name) {
                    return Err(bad(&s.url, "does not end in a usable repository name"));
                }
                name.to_string()
            }
        };
        if let Some(b) = &branch
            && (b.starts_with('-')
                || b.bytes()
                    .any(|c| c.is_ascii_whitespace() || c.is_ascii_control()))
        {
            return Err(bad(&s.url, "has an invalid branch name"));
        }
        if out.iter().any(|c| c.dir == dir) {
            return Err(bad(
                &s.url,
                &format!("clones into /workspace/{dir}, like an earlier source"),
            ));
        }
        out.push(Clone { url, branch, dir });
    }
    Ok(out)
}

impl App {
    /// Clone every source in order; the first failure stops and says why.
    pub(super) async fn clone_sources(
        &self,
        t: &Tenant,
        row: &SandboxRow,
        clones: &[Clone],
    ) -> Result<(), AppError> {
        for c in clones {
            self.phase(
                &row.id,
                islo_api::CreationPhase::Sources,
                Some(c.url.clone()),
            );
            let mut command = vec!["git".to_string(), "clone".into(), "--quiet".into()];
            if let Some(b) = &c.branch {
                command.extend(["--branch".into(), b.clone()]);
            }
            command.extend(["--".into(), c.url.clone(), format!("/workspace/{}", c.dir)]);
            let req = ExecRequest {
                command,
                workdir: Some("/workspace".into()),
                ..Default::default()
            };
            let (_, mut rx, _) = self.exec_stream(t, &row.name, &req)?;
            let mut err = Vec::new();
            let mut code = None;
            while let Some(ev) = rx.recv().await {
                match ev {
                    ExecEvent::Stderr(b) | ExecEvent::Stdout(b) => err.extend_from_slice(&b),
                    ExecEvent::Exit(c) => {
                        code = Some(c);
                        break;
                    }
                    ExecEvent::Error(e) => {
                        err.extend_from_slice(e.message.as_bytes());
                        break;
                    }
                    ExecEvent::TimedOut => {}
                }
            }
            if code != Some(0) {
                let text = String::from_utf8_lossy(&err);
                let tail: String = text
                    .chars()
                    .rev()
                    .take(ERR_TAIL)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let hint =
                    if code == Some(127) || tail.contains("not found") && tail.contains("git") {
                        " (the image needs git)"
                    } else {
                        ""
                    };
                return Err(AppError::Provisioning(format!(
                    "cloning {} failed{hint}: {}",
                    c.url,
                    tail.trim()
                )));
            }
            tracing::info!(sandbox = %row.name, url = %c.url, "source cloned");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str) -> SourceSpec {
        SourceSpec {
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn shorthands_and_urls() {
        let c = parse(
            &[src("github://acme/demo:feature")],
            "https://git.test:8443/",
        )
        .unwrap();
        assert_eq!(c[0].url, "https://git.test:8443/acme/demo.git");
        assert_eq!(c[0].branch.as_deref(), Some("feature"));
        assert_eq!(c[0].dir, "demo");
        let c = parse(
            &[src("https://git.test:8443/x/repo.git")],
            "https://github.com",
        )
        .unwrap();
        assert_eq!(
            (c[0].url.as_str(), c[0].branch.as_deref(), c[0].dir.as_str()),
            ("https://git.test:8443/x/repo.git", None, "repo")
        );
        let c = parse(&[src("https://github.com/o/r:dev")], "https://github.com").unwrap();
        assert_eq!(
            (c[0].url.as_str(), c[0].branch.as_deref()),
            ("https://github.com/o/r", Some("dev"))
        );
        let c = parse(
            &[SourceSpec {
                url: "https://h/o/r".into(),
                branch: Some("b".into()),
                ..Default::default()
            }],
            "",
        )
        .unwrap();
        assert_eq!(c[0].branch.as_deref(), Some("b"));
    }

    #[test]
    fn bad_sources_say_why() {
        for s in [
            "git@github.com:o/r.git",
            "file:///etc",
            "github://only",
            "https://h/..",
            "https://h/o/r:-x",
        ] {
            assert!(parse(&[src(s)], "https://github.com").is_err(), "{s}");
        }
        assert!(
            parse(
                &[src("github://a/r"), src("github://b/r")],
                "https://github.com"
            )
            .is_err()
        );
    }

    #[test]
    fn sdk_sources_name_repo_url_and_target_path() {
        let s: SourceSpec =
            serde_json::from_str(r#"{"repo_url": "https://h/o/r.git", "target_path": "code/r"}"#)
                .unwrap();
        let c = parse(&[s], "").unwrap();
        assert_eq!(
            (c[0].url.as_str(), c[0].dir.as_str()),
            ("https://h/o/r.git", "code/r")
        );
        let at = |t: &str| SourceSpec {
            target_path: Some(t.into()),
            ..src("https://h/o/r.git")
        };
        assert_eq!(parse(&[at("/workspace/x/")], "").unwrap()[0].dir, "x");
        for t in [
            "../etc",
            "/etc",
            "/workspace",
            "a//b",
            "a/./b",
            "",
            "sp ace",
        ] {
            assert!(parse(&[at(t)], "").is_err(), "{t}");
        }
    }
}
