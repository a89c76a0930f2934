//! `islo gateway …`: gateway profiles and their rules.
//!
//! `ls`, `create …`, `NAME` (show), `NAME update …`, `NAME rm [-f]`, `NAME add-rule …`,
//! `NAME update-rule ID …`, `NAME rm-rule ID`, `NAME rule ls`, `NAME reorder --rule ID=N…`,
//! and `log SANDBOX` (the gateway's decisions, [`crate::cmd_gateway_log`]).

use clap::{Args, Parser};
use islo_api::{
    AuthMode, AuthStrategy, GatewayProfileRequest, GatewayRuleRequest, GatewayRuleResponse,
    ReorderRulesRequest, RuleAction, RulePriority,
};
use islo_client::Client;

use crate::cli::Output;
use crate::{EXIT_USAGE, Exit, ui, usage};

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway create")]
struct Create {
    #[arg(long)]
    name: String,
    #[command(flatten)]
    fields: ProfileFields,
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway NAME update")]
struct Update {
    /// New name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    fields: ProfileFields,
}

#[derive(Args)]
struct ProfileFields {
    #[arg(long)]
    description: Option<String>,
    /// What traffic no rule matches gets.
    #[arg(long, value_parser = ["allow", "deny"])]
    default_action: Option<String>,
    /// Whether the profile lets sandboxes reach the internet at all.
    #[arg(long)]
    internet_access: Option<bool>,
    /// Make it the tenant's default profile.
    #[arg(long)]
    is_default: Option<bool>,
    /// When TLS is decrypted: `always`, or `when_needed` (a host decided without path,
    /// method, rate limit or credential is passed through undecrypted, near direct speed).
    #[arg(long, value_parser = ["always", "when_needed"])]
    tls_inspection: Option<String>,
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway NAME add-rule")]
struct Rule {
    /// Host glob (`*.github.com`, `*`).
    #[arg(long)]
    host: Option<String>,
    /// Path glob (`/v1/*`).
    #[arg(long)]
    path: Option<String>,
    /// HTTP method (repeatable).
    #[arg(long = "method")]
    methods: Vec<String>,
    #[arg(long, value_parser = ["allow", "deny"])]
    action: Option<String>,
    #[arg(long)]
    rate_limit_rpm: Option<u32>,
    /// Stored secret to inject into matching requests.
    #[arg(long)]
    provider_key: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
    /// Lower runs first.
    #[arg(long)]
    priority: Option<i64>,
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway NAME reorder")]
struct Reorder {
    /// `RULE_ID=PRIORITY` (repeatable).
    #[arg(long = "rule", required = true)]
    rules: Vec<String>,
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway NAME rm")]
struct Rm {
    #[arg(short, long)]
    force: bool,
}

fn parse<T: Parser>(args: &[String]) -> T {
    T::try_parse_from(args).unwrap_or_else(|e| e.exit())
}

impl ProfileFields {
    fn request(self, name: Option<String>) -> GatewayProfileRequest {
        GatewayProfileRequest {
            name,
            description: self.description,
            // clap allowed only the set's words.
            default_action: self.default_action.as_deref().and_then(RuleAction::parse),
            internet_enabled: self.internet_access,
            is_default: self.is_default,
            tls_inspection: self
                .tls_inspection
                .as_deref()
                .and_then(islo_api::TlsInspection::parse),
        }
    }
}

/// How a credential is added to a request (`islo gateway … add-rule`, `islo secret set`).
#[derive(Args)]
pub struct AuthArgs {
    /// How to inject it.
    #[arg(long, value_parser = ["bearer", "basic", "header"])]
    auth_mode: Option<String>,
    /// `--auth-mode header`: the header's name.
    #[arg(long)]
    auth_header: Option<String>,
    /// `--auth-mode basic`: the user name.
    #[arg(long)]
    auth_username: Option<String>,
}

impl AuthArgs {
    pub fn strategy(self) -> Option<AuthStrategy> {
        // clap allowed only the set's words.
        let mode = self.auth_mode.as_deref().and_then(AuthMode::parse)?;
        Some(AuthStrategy {
            mode,
            username: self.auth_username,
            name: self.auth_header,
            format: None,
        })
    }
}

impl Rule {
    fn request(self) -> GatewayRuleRequest {
        let auth = self.auth.strategy();
        GatewayRuleRequest {
            host_pattern: self.host,
            path_pattern: self.path,
            methods: (!self.methods.is_empty()).then_some(self.methods),
            action: self.action.as_deref().and_then(RuleAction::parse),
            priority: self.priority,
            rate_limit_rpm: self.rate_limit_rpm,
            provider_key: self.provider_key,
            auth_strategy: auth,
        }
    }
}

/// `-o`/`--output` given after the subcommand (the arguments are taken as they are).
fn take_output(args: &[String], mut output: Output) -> anyhow::Result<(Vec<String>, Output)> {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "-o" | "--output" => it.next().cloned(),
            v if v.starts_with("--output=") => Some(v["--output=".len()..].to_string()),
            _ => {
                rest.push(a.clone());
                continue;
            }
        };
        output = match value.as_deref() {
            Some("json") => Output::Json,
            Some("table") => Output::Table,
            Some("plain") => Output::Plain,
            other => {
                return Err(usage(format!(
                    "invalid --output {other:?}: use table, json or plain"
                )));
            }
        };
    }
    Ok((rest, output))
}

/// Run `islo gateway ARGS…`.
pub async fn run(client: &Client, args: &[String], output: Output) -> anyhow::Result<()> {
    let (args, output) = take_output(args, output)?;
    let args = &args[..];
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match strs.as_slice() {
        [] | ["ls"] | ["list"] => ls(client, output).await,
        ["create", ..] => {
            let c: Create = parse(&args[1..]);
            let p = client
                .create_gateway_profile(&c.fields.request(Some(c.name)))
                .await?;
            eprintln!("Created gateway profile {}", p.name);
            print_json_or_name(&p, &p.name, output)
        }
        ["log", ..] => crate::cmd_gateway_log::run(client, &args[1..], output).await,
        [name] => show(client, name, output).await,
        [name, "update", ..] => {
            let u: Update = parse(&args[2..]);
            let p = client
                .update_gateway_profile(name, &u.fields.request(u.name))
                .await?;
            print_json_or_name(&p, &p.name, output)
        }
        [name, "rm" | "delete", ..] => rm(client, name, parse::<Rm>(&args[2..]).force).await,
        [name, "add-rule", ..] => {
            let r = parse::<Rule>(&args[2..]).request();
            if r.host_pattern.is_none() {
                return Err(usage("add-rule needs --host PATTERN"));
            }
            let rule = client.add_gateway_rule(name, &r).await?;
            print_json_or_name(&rule, &rule.id, output)
        }
        [name, "update-rule", id, ..] => {
            let rule = client
                .update_gateway_rule(name, id, &parse::<Rule>(&args[3..]).request())
                .await?;
            print_json_or_name(&rule, &rule.id, output)
        }
        [name, "rm-rule", id] => {
            client.delete_gateway_rule(name, id).await?;
            eprintln!("Removed rule {id} from {name}");
            Ok(())
        }
        [name, "rule", "ls"] | [name, "rules"] => {
            let p = client.gateway_profile(name).await?;
            print_rules(&p.rules, output)
        }
        [name, "reorder", ..] => {
            let r: Reorder = parse(&args[2..]);
            let rules = r
                .rules
                .iter()
                .map(
                    |s| match s.split_once('=').map(|(id, p)| (id, p.parse::<i64>())) {
                        Some((id, Ok(priority))) => Ok(RulePriority {
                            rule_id: id.to_string(),
                            priority,
                        }),
                        _ => Err(usage(format!("--rule {s:?}: expected RULE_ID=PRIORITY"))),
                    },
                )
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rules = client
                .reorder_gateway_rules(name, &ReorderRulesRequest { rules })
                .await?;
            print_rules(&rules, output)
        }
        _ => Err(usage(format!(
            "unknown gateway command: islo gateway {}",
            args.join(" ")
        ))),
    }
}

fn print_json_or_name<T: serde::Serialize>(
    v: &T,
    name: &str,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(v)?),
        _ => outln!("{name}"),
    }
    Ok(())
}

async fn ls(client: &Client, output: Output) -> anyhow::Result<()> {
    let profiles = client.gateway_profiles().await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&profiles)?);
        return Ok(());
    }
    let rows = profiles
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.default_action.to_string(),
                if p.internet_enabled { "on" } else { "off" }.into(),
                p.rule_count.unwrap_or(0).to_string(),
                if p.is_default { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(
            &["NAME", "DEFAULT ACTION", "INTERNET", "RULES", "DEFAULT"],
            rows
        )
    );
    Ok(())
}

async fn show(client: &Client, name: &str, output: Output) -> anyhow::Result<()> {
    let d = client.gateway_profile(name).await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let p = &d.profile;
    outln!(
        "Name:            {}{}",
        p.name,
        if p.is_default { " (default)" } else { "" }
    );
    outln!("ID:              {}", p.id);
    if let Some(desc) = &p.description {
        outln!("Description:     {desc}");
    }
    outln!("Default action:  {}", p.default_action);
    outln!(
        "Internet:        {}",
        if p.internet_enabled { "on" } else { "off" }
    );
    outln!("TLS inspection:  {}", p.tls_inspection);
    outln!();
    print_rules(&d.rules, output)
}

fn print_rules(rules: &[GatewayRuleResponse], output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(rules)?);
        return Ok(());
    }
    if rules.is_empty() {
        outln!("No rules: every request gets the default action.");
        return Ok(());
    }
    let rows = rules
        .iter()
        .map(|r| {
            vec![
                r.priority.to_string(),
                r.id.clone(),
                r.host_pattern.clone(),
                r.path_pattern.clone().unwrap_or_default(),
                r.methods.as_ref().map(|m| m.join(",")).unwrap_or_default(),
                r.action.to_string(),
                r.rate_limit_rpm.map(|n| n.to_string()).unwrap_or_default(),
                r.provider_key.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(
            &[
                "PRIORITY", "ID", "HOST", "PATH", "METHODS", "ACTION", "RPM", "INJECTS"
            ],
            rows
        )
    );
    Ok(())
}

async fn rm(client: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    client.gateway_profile(name).await?;
    if !force {
        if !ui::stdin_tty() {
            return Err(Exit {
                code: EXIT_USAGE,
                message: format!(
                    "refusing to remove gateway profile {name} without confirmation: pass -f"
                ),
            }
            .into());
        }
        if !ui::confirm(&format!("Remove gateway profile {name} and its rules?")) {
            eprintln!("Aborted.");
            return Ok(());
        }
    }
    client.delete_gateway_profile(name).await?;
    eprintln!("Gateway profile {name} removed");
    Ok(())
}
