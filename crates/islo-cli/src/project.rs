//! `islo.yaml`, the project file: defaults for sandboxes this directory creates.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The fields `islo use` applies. Others of the reference format are accepted and reported
/// as not supported yet, so a project file written for Islo still loads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub sandbox: Option<String>,
    pub image: Option<String>,
    #[serde(alias = "cpus")]
    pub cpu: Option<u32>,
    pub memory_mb: Option<u32>,
    pub disk_gb: Option<u32>,
    pub workdir: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub sources: Option<Vec<Source>>,
    pub gateway_profile: Option<String>,
    pub setup_script: Option<String>,
    pub setup_scripts: Option<Vec<SetupStep>>,
    pub environment: Option<String>,
    pub init: Option<serde_json::Value>,
    pub lifecycle: Option<islo_api::LifecyclePolicy>,
    /// The isolation class of the sandbox (`container`, `gvisor`).
    pub isolation: Option<String>,
}

/// A repository to clone: a shorthand string or `{url, branch}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Source {
    Short(String),
    Full(FullSource),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FullSource {
    pub url: String,
    pub branch: Option<String>,
}

impl Source {
    pub fn spec(&self) -> islo_api::SourceSpec {
        match self {
            Self::Short(url) => islo_api::SourceSpec {
                url: url.clone(),
                ..Default::default()
            },
            Self::Full(f) => islo_api::SourceSpec {
                url: f.url.clone(),
                branch: f.branch.clone(),
                ..Default::default()
            },
        }
    }
}

/// A named setup step.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SetupStep {
    pub name: Option<String>,
    pub script: String,
}

impl Project {
    /// The setup steps: `setup_scripts`, else `setup_script` as one step named `setup`.
    pub fn setup(&self) -> Vec<islo_api::SetupScript> {
        if self.setup_scripts.is_some() && self.setup_script.is_some() {
            eprintln!(
                "islo: warning: islo.yaml has both setup_scripts and setup_script; using setup_scripts"
            );
        }
        match (&self.setup_scripts, &self.setup_script) {
            (Some(steps), _) => steps
                .iter()
                .map(|s| islo_api::SetupScript {
                    name: s.name.clone(),
                    script: s.script.clone(),
                })
                .collect(),
            (None, Some(script)) => vec![islo_api::SetupScript {
                name: Some("setup".into()),
                script: script.clone(),
            }],
            (None, None) => Vec::new(),
        }
    }
}

/// Expand `${VAR}` from the local environment.
fn expand(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find('}') {
            Some(j) => {
                out.push_str(&std::env::var(&rest[i + 2..i + 2 + j]).unwrap_or_default());
                rest = &rest[i + 3 + j..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parse a project file's text.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Project> {
    let mut p: Project =
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for v in p.env.values_mut() {
        *v = expand(v);
    }
    Ok(p)
}

/// Load `--config PATH`, else `./islo.yaml` if present, unless `--no-config`.
pub fn load(explicit: Option<&Path>, disabled: bool) -> anyhow::Result<Option<Project>> {
    if disabled {
        return Ok(None);
    }
    let path = explicit.unwrap_or(Path::new("islo.yaml"));
    match std::fs::read_to_string(path) {
        Ok(t) => parse(path, &t).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_fields_and_expands_env() {
        // SAFETY-free: set_var is safe in edition 2024 only inside unsafe; use an existing var.
        let home = std::env::var("HOME").unwrap_or_default();
        let p = parse(Path::new("islo.yaml"), "sandbox: my-project\ncpu: 2\nmemory_mb: 2048\nenv:\n  H: ${HOME}/x\nsources: [github://o/r, {url: https://h/x/y.git, branch: dev}]\nlifecycle: {pause_after_idle: 600, auto_resume: on_activity}\nisolation: gvisor\n").unwrap();
        assert_eq!(p.isolation.as_deref(), Some("gvisor"));
        let specs: Vec<_> = p.sources.iter().flatten().map(Source::spec).collect();
        assert_eq!(specs[0].url, "github://o/r");
        assert_eq!(specs[1].branch.as_deref(), Some("dev"));
        assert_eq!(p.sandbox.as_deref(), Some("my-project"));
        assert_eq!(p.env["H"], format!("{home}/x"));
        let l = p.lifecycle.unwrap();
        assert_eq!(l.pause_after_idle, Some(600));
        assert_eq!(l.auto_resume, Some(islo_api::AutoResume::OnActivity));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file() {
        let e = parse(Path::new("islo.yaml"), "sandbox: x\nbogus: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("islo.yaml") && e.contains("bogus"), "{e}");
    }
}
