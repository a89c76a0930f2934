//! `islo environment ls|get|create|update|rm|default` (alias `islo env`): named sets of
//! variables and secrets that new sandboxes get (`islo use --environment NAME`).

use std::io::Read;

use clap::{Args, Subcommand};
use islo_api::{
    AuthMode, AuthStrategy, CreateEnvironmentRequest, EntryKind, EntryPlacement,
    EnvironmentEntryInput, EnvironmentGatewayRule, EnvironmentResponse, UpdateEnvironmentRequest,
};
use islo_client::Client;

use crate::cli::Output;
use crate::{ui, usage};

#[derive(Args)]
pub struct EnvironmentArgs {
    #[command(subcommand)]
    cmd: EnvCmd,
}

/// What an entry flag can say.
#[derive(Args, Default)]
struct Entries {
    /// A variable in every command's env (repeatable).
    #[arg(long = "variable", value_name = "KEY=VALUE")]
    variables: Vec<String>,
    /// A secret in every command's env; VALUE `-` reads it from standard input (repeatable).
    #[arg(long = "secret", value_name = "KEY=VALUE")]
    secrets: Vec<String>,
    /// A secret only the gateway holds, added toward a host; the sandbox sees a placeholder:
    /// `KEY=VALUE;host=HOST[;path=GLOB][;methods=GET,POST][;auth=bearer|basic|header:NAME][;user=U]`.
    #[arg(long = "gateway-secret", value_name = "SPEC")]
    gateway_secrets: Vec<String>,
}

#[derive(Subcommand)]
enum EnvCmd {
    /// List environments.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one (secret values are never shown).
    Get { name: String },
    /// Create one.
    Create {
        /// Its name.
        #[arg(required_unless_present = "name_flag")]
        name: Option<String>,
        #[arg(long = "name", conflicts_with = "name", hide = true)]
        name_flag: Option<String>,
        /// Make it the tenant's default (sandboxes created without --environment get it).
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        entries: Entries,
    },
    /// Change one: entries given are set, `--unset` removes, the rest stay (secrets keep
    /// their values).
    Update {
        name: String,
        #[arg(long, value_name = "NEW_NAME")]
        rename: Option<String>,
        /// Remove this entry (repeatable).
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        entries: Entries,
    },
    /// Make it the tenant's default.
    Default { name: String },
    /// Remove one.
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

fn split_kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| usage(format!("{s:?}: expected KEY=VALUE")))?;
    let v = if v == "-" {
        let mut b = String::new();
        std::io::stdin().read_to_string(&mut b)?;
        b.trim_end_matches(['\r', '\n']).to_string()
    } else {
        v.to_string()
    };
    Ok((k.to_string(), v))
}

fn auth(spec: &str, user: Option<String>) -> anyhow::Result<AuthStrategy> {
    let (mode, name) = match spec.split_once(':') {
        Some(("header", n)) => (AuthMode::Header, Some(n.to_string())),
        None if spec == "bearer" => (AuthMode::Bearer, None),
        None if spec == "basic" => (AuthMode::Basic, None),
        _ => {
            return Err(usage(format!(
                "auth={spec}: use bearer, basic or header:NAME"
            )));
        }
    };
    Ok(AuthStrategy {
        mode,
        username: user,
        name,
        format: None,
    })
}

/// `KEY=VALUE;host=H;…` as an entry.
fn gateway_secret(spec: &str) -> anyhow::Result<EnvironmentEntryInput> {
    let mut parts = spec.split(';');
    let (key, value) = split_kv(parts.next().unwrap_or_default())?;
    let mut rule = EnvironmentGatewayRule::default();
    let (mut how, mut user) = (None, None);
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(format!("--gateway-secret: {p:?} is not NAME=VALUE")))?;
        match k.trim() {
            "host" => rule.host_pattern = v.to_string(),
            "path" => rule.path_pattern = Some(v.to_string()),
            "methods" => {
                rule.methods = Some(v.split(',').map(|m| m.trim().to_uppercase()).collect())
            }
            "auth" => how = Some(v.to_string()),
            "user" => user = Some(v.to_string()),
            other => return Err(usage(format!("--gateway-secret: unknown part {other:?}"))),
        }
    }
    if rule.host_pattern.is_empty() {
        return Err(usage(format!(
            "--gateway-secret for {key}: host=HOST is required"
        )));
    }
    rule.auth_strategy = Some(auth(how.as_deref().unwrap_or("bearer"), user)?);
    Ok(EnvironmentEntryInput {
        kind: EntryKind::Secret,
        key,
        value: Some(value),
        placement: Some(EntryPlacement::GatewayInjected),
        rule: Some(rule),
    })
}

fn inputs(e: &Entries) -> anyhow::Result<Vec<EnvironmentEntryInput>> {
    let mut out = Vec::new();
    for v in &e.variables {
        let (key, value) = split_kv(v)?;
        out.push(EnvironmentEntryInput {
            kind: EntryKind::Variable,
            key,
            value: Some(value),
            placement: None,
            rule: None,
        });
    }
    for s in &e.secrets {
        let (key, value) = split_kv(s)?;
        out.push(EnvironmentEntryInput {
            kind: EntryKind::Secret,
            key,
            value: Some(value),
            placement: Some(EntryPlacement::SandboxEnv),
            rule: None,
        });
    }
    for g in &e.gateway_secrets {
        out.push(gateway_secret(g)?);
    }
    Ok(out)
}

/// The stored entries as inputs that keep them (secrets without their values).
fn kept(env: &EnvironmentResponse) -> Vec<EnvironmentEntryInput> {
    env.entries
        .iter()
        .map(|e| EnvironmentEntryInput {
            kind: e.kind,
            key: e.key.clone(),
            value: e.value.clone(),
            placement: Some(e.placement),
            rule: e.rule.as_ref().map(|r| EnvironmentGatewayRule {
                host_pattern: r.host_pattern.clone(),
                path_pattern: r.path_pattern.clone(),
                methods: r.methods.clone(),
                auth_strategy: r.auth_strategy.clone(),
                ..Default::default()
            }),
        })
        .collect()
}

fn show(env: &EnvironmentResponse, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(env)?);
        return Ok(());
    }
    outln!(
        "Environment: {}{}",
        env.name,
        if env.is_default { " (default)" } else { "" }
    );
    outln!("Id: {}", env.id);
    let rows = env
        .entries
        .iter()
        .map(|e| {
            let value = match (&e.value, e.has_value) {
                (Some(v), _) => v.clone(),
                (None, Some(true)) => "****".into(),
                _ => String::new(),
            };
            let toward = e
                .rule
                .as_ref()
                .map_or(String::new(), |r| r.host_pattern.clone());
            vec![
                e.key.clone(),
                e.kind.to_string(),
                e.placement.to_string(),
                value,
                toward,
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(&["KEY", "KIND", "PLACEMENT", "VALUE", "HOST"], rows)
    );
    Ok(())
}

/// `islo environment ls`.
async fn ls(client: &Client, output: Output) -> anyhow::Result<()> {
    let all = client.environments().await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .into_iter()
        .map(|e| {
            let d = if e.is_default { "yes" } else { "" };
            vec![
                e.name,
                e.variable_count.to_string(),
                e.secret_count.to_string(),
                d.into(),
                ui::ago(&e.updated_at),
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(
            &["NAME", "VARIABLES", "SECRETS", "DEFAULT", "UPDATED"],
            rows
        )
    );
    Ok(())
}

pub async fn run(client: &Client, a: EnvironmentArgs, output: Output) -> anyhow::Result<()> {
    match a.cmd {
        EnvCmd::Ls => ls(client, output).await,
        EnvCmd::Get { name } => show(&client.environment(&name).await?, output),
        EnvCmd::Create {
            name,
            name_flag,
            default,
            entries,
        } => {
            let req = CreateEnvironmentRequest {
                name: name.or(name_flag).unwrap_or_default(),
                is_default: default.then_some(true),
                entries: Some(inputs(&entries)?),
            };
            let env = client.create_environment(&req).await?;
            eprintln!("Environment {} created", env.name);
            show(&env, output)
        }
        EnvCmd::Update {
            name,
            rename,
            unset,
            default,
            entries,
        } => {
            let current = client.environment(&name).await?;
            let mut all = kept(&current);
            let given = inputs(&entries)?;
            all.retain(|e| !unset.contains(&e.key) && !given.iter().any(|g| g.key == e.key));
            if let Some(u) = unset
                .iter()
                .find(|u| !current.entries.iter().any(|e| &e.key == *u))
            {
                return Err(usage(format!("--unset {u}: {name} has no such entry")));
            }
            all.extend(given);
            let req = UpdateEnvironmentRequest {
                name: rename,
                is_default: default.then_some(true),
                entries: Some(all),
            };
            let env = client.update_environment(&current.id, &req).await?;
            eprintln!("Environment {} updated", env.name);
            show(&env, output)
        }
        EnvCmd::Default { name } => {
            let env = client.set_default_environment(&name).await?;
            eprintln!("Environment {} is the default", env.name);
            Ok(())
        }
        EnvCmd::Rm { name } => {
            client.delete_environment(&name).await?;
            eprintln!("Environment {name} removed");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_secret_specs_parse() {
        let e = gateway_secret(
            "TOKEN=abc;host=api.x.com;path=/v1/**;methods=get,post;auth=header:X-Key",
        )
        .unwrap();
        assert_eq!((e.key.as_str(), e.value.as_deref()), ("TOKEN", Some("abc")));
        let r = e.rule.unwrap();
        assert_eq!(r.host_pattern, "api.x.com");
        assert_eq!(r.methods.unwrap(), ["GET", "POST"]);
        let a = r.auth_strategy.unwrap();
        assert_eq!(
            (a.mode, a.name.as_deref()),
            (AuthMode::Header, Some("X-Key"))
        );
        let b = gateway_secret("T=v;host=h").unwrap();
        assert_eq!(
            b.rule.unwrap().auth_strategy.unwrap().mode,
            AuthMode::Bearer
        );
        assert!(gateway_secret("T=v").is_err());
        assert!(gateway_secret("T=v;host=h;auth=magic").is_err());
        assert!(gateway_secret("T=v;host=h;colour=red").is_err());
    }
}
