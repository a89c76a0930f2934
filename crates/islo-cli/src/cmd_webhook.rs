//! `islo webhook incoming create|ls|get|update|rm|deliveries|delivery`: URLs that act on
//! sandboxes when a service (GitHub, Stripe, …) calls them.

use std::io::Read;

use clap::{Args, Subcommand};
use islo_api::{
    CreateWebhookRequest, DeliveriesQuery, HmacVerifier, IdempotencyConfig, IncomingWebhook,
    SignedPayload, UpdateWebhookRequest, ValueSource, WebhookAction, WebhookAuth, WebhookRule,
    WebhookSandboxTemplate, WebhookSecret, WebhookStatus, WebhookTarget,
};
use islo_client::Client;

use crate::cli::Output;
use crate::{ui, usage};

#[derive(Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    cmd: Kind,
}

#[derive(Subcommand)]
enum Kind {
    /// Webhooks that services call.
    #[command(subcommand)]
    Incoming(Incoming),
}

/// How `create` builds a webhook from flags (or `--request-json` for all of it).
#[derive(Args)]
struct Build {
    /// The whole request as JSON (a file, or `-` for standard input); flags are then ignored.
    #[arg(long, value_name = "FILE")]
    request_json: Option<String>,
    /// The sandbox every event is for.
    #[arg(long, value_name = "NAME", conflicts_with = "sandbox_from_json")]
    sandbox: Option<String>,
    /// Take the sandbox's name from the event's JSON body (e.g. `$.repository.name`).
    #[arg(long, value_name = "PATH")]
    sandbox_from_json: Option<String>,
    /// Check a GitHub-style HMAC-SHA256 signature with this secret.
    #[arg(long, value_name = "SECRET")]
    hmac_secret_value: Option<String>,
    /// A label for that secret.
    #[arg(long, default_value = "hmac")]
    hmac_secret_name: String,
    /// The header carrying the signature.
    #[arg(long, default_value = "X-Hub-Signature-256")]
    hmac_header: String,
    /// What the signature starts with.
    #[arg(long, default_value = "sha256=")]
    hmac_prefix: String,
    /// Require `Authorization: Bearer TOKEN` instead.
    #[arg(long, value_name = "TOKEN", conflicts_with = "hmac_secret_value")]
    bearer_token: Option<String>,
    /// The header whose value makes two deliveries the same event (default: the body's SHA-256).
    #[arg(long, value_name = "HEADER")]
    idempotency_header: Option<String>,
    /// What to do (repeatable, in order): ensure-sandbox, resume-sandbox, delete-sandbox.
    #[arg(long = "action", value_name = "ACTION")]
    actions: Vec<String>,
    #[arg(long, value_name = "IMAGE")]
    ensure_image: Option<String>,
    #[arg(long, default_value_t = 2)]
    ensure_vcpus: u32,
    #[arg(long, default_value_t = 2048)]
    ensure_memory_mb: u32,
    #[arg(long, default_value_t = 10)]
    ensure_disk_gb: u32,
    #[arg(long, value_name = "NAME")]
    gateway_profile: Option<String>,
    /// Forward each request to this port inside the sandbox (after the other actions).
    #[arg(long, value_name = "PORT")]
    deliver_to_port: Option<u16>,
    /// The path it is forwarded to (default `/`).
    #[arg(long, value_name = "PATH")]
    deliver_path: Option<String>,
}

#[derive(Subcommand)]
enum Incoming {
    /// Make a webhook; prints its receiver URL.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        build: Box<Build>,
    },
    /// List webhooks.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one (secrets redacted).
    Get { id: String },
    /// Change one: its name, status, or all of it from JSON.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// active or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Fields to replace, as JSON (a file, or `-`).
        #[arg(long, value_name = "FILE")]
        request_json: Option<String>,
    },
    /// Remove one.
    #[command(visible_alias = "delete")]
    Rm {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Its deliveries, newest first.
    Deliveries {
        id: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One delivery with its action attempts.
    Delivery { id: String, event_id: String },
}

fn read_json<T: serde::de::DeserializeOwned>(src: &str) -> anyhow::Result<T> {
    let mut text = String::new();
    if src == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(src).map_err(|e| usage(format!("{src}: {e}")))?;
    }
    serde_json::from_str(&text).map_err(|e| usage(format!("{src}: {e}")))
}

fn action(b: &Build, a: &str) -> anyhow::Result<WebhookAction> {
    Ok(match a {
        "ensure-sandbox" | "ensure_sandbox" => WebhookAction::EnsureSandbox {
            template: WebhookSandboxTemplate {
                image: b
                    .ensure_image
                    .clone()
                    .ok_or_else(|| usage("--action ensure-sandbox needs --ensure-image"))?,
                vcpus: b.ensure_vcpus,
                memory_mb: b.ensure_memory_mb,
                disk_gb: b.ensure_disk_gb,
                gateway_profile: b.gateway_profile.clone(),
                env: None,
                workdir: None,
                snapshot_name: None,
                setup_scripts: None,
                sources: None,
                cache_key: None,
                init: None,
            },
        },
        "resume-sandbox" | "resume_sandbox" => WebhookAction::ResumeSandbox,
        "pause-sandbox" | "pause_sandbox" => WebhookAction::PauseSandbox,
        "delete-sandbox" | "delete_sandbox" => WebhookAction::DeleteSandbox,
        other => {
            return Err(usage(format!(
                "--action {other}: use ensure-sandbox, resume-sandbox, pause-sandbox or \
                 delete-sandbox"
            )));
        }
    })
}

fn request(name: &str, b: &Build) -> anyhow::Result<CreateWebhookRequest> {
    if let Some(src) = &b.request_json {
        return read_json(src);
    }
    let target = match (&b.sandbox, &b.sandbox_from_json) {
        (Some(n), _) => WebhookTarget::FixedSandboxName {
            sandbox_name: n.clone(),
        },
        (None, Some(p)) => WebhookTarget::SandboxNameFromEvent {
            source: ValueSource::JsonPath { path: p.clone() },
            required_prefix: None,
            allowed_pattern: None,
            allowed_names: None,
        },
        (None, None) => {
            return Err(usage(
                "say which sandbox: --sandbox NAME or --sandbox-from-json PATH",
            ));
        }
    };
    let auth = match (&b.hmac_secret_value, &b.bearer_token) {
        (Some(v), _) => WebhookAuth::Hmac(HmacVerifier {
            algorithm: "sha256".into(),
            encoding: "hex".into(),
            prefix: Some(b.hmac_prefix.clone()).filter(|p| !p.is_empty()),
            secret: WebhookSecret {
                name: b.hmac_secret_name.clone(),
                value: v.clone(),
            },
            signature: ValueSource::Header {
                name: b.hmac_header.clone(),
            },
            signed_payload: SignedPayload::RawBody,
            timestamp: None,
        }),
        (None, Some(t)) => WebhookAuth::BearerStatic(islo_api::BearerStaticVerifier {
            token: WebhookSecret {
                name: "bearer".into(),
                value: t.clone(),
            },
        }),
        (None, None) => WebhookAuth::None,
    };
    let mut actions = b
        .actions
        .iter()
        .map(|a| action(b, a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(port) = b.deliver_to_port {
        actions.push(WebhookAction::DeliverToPort {
            port,
            path: b.deliver_path.clone(),
            payload: None,
            auto_resume: Some("on_activity".into()),
        });
    }
    if actions.is_empty() {
        return Err(usage(
            "say what to do: --action ensure-sandbox|resume-sandbox|delete-sandbox and/or --deliver-to-port PORT",
        ));
    }
    Ok(CreateWebhookRequest {
        name: name.to_string(),
        auth,
        idempotency: match &b.idempotency_header {
            Some(h) => IdempotencyConfig::Header { name: h.clone() },
            None => IdempotencyConfig::BodySha256,
        },
        target,
        rules: Some(vec![WebhookRule {
            when: None,
            actions,
        }]),
        status: None,
    })
}

fn show(w: &IncomingWebhook, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(w)?),
        _ => {
            outln!("Webhook: {} ({})", w.name, w.id);
            outln!("Status: {}", w.status);
            outln!("Receiver: {}", w.receiver_url);
            outln!("Auth: {}", w.auth["auth_type"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// `islo webhook incoming ls`.
async fn ls(client: &Client, output: Output) -> anyhow::Result<()> {
    let all = client.webhooks().await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .into_iter()
        .map(|w| vec![w.id, w.name, w.status.to_string(), w.receiver_url])
        .collect();
    out!("{}", ui::table(&["ID", "NAME", "STATUS", "RECEIVER"], rows));
    Ok(())
}

/// `islo webhook incoming deliveries`.
async fn deliveries(
    client: &Client,
    id: &str,
    status: Option<String>,
    limit: u32,
    output: Output,
) -> anyhow::Result<()> {
    let q = DeliveriesQuery {
        limit: Some(limit),
        status,
        ..Default::default()
    };
    let all = client.webhook_deliveries(id, &q).await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .into_iter()
        .map(|d| {
            vec![
                d.event_id,
                ui::datetime(&d.verified_at),
                d.status.to_string(),
                d.attempts.to_string(),
                d.last_error.unwrap_or_default(),
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(&["EVENT", "RECEIVED", "STATUS", "ATTEMPTS", "ERROR"], rows)
    );
    Ok(())
}

pub async fn run(client: &Client, a: WebhookArgs, output: Output) -> anyhow::Result<()> {
    let Kind::Incoming(cmd) = a.cmd;
    match cmd {
        Incoming::Create { name, build } => {
            let w = client.create_webhook(&request(&name, &build)?).await?;
            show(&w, output)
        }
        Incoming::Ls => ls(client, output).await,
        Incoming::Get { id } => show(&client.webhook(&id).await?, output),
        Incoming::Update {
            id,
            name,
            status,
            request_json,
        } => {
            let mut req: UpdateWebhookRequest = match request_json {
                Some(src) => read_json(&src)?,
                None => UpdateWebhookRequest::default(),
            };
            if name.is_some() {
                req.name = name;
            }
            if let Some(s) = status {
                req.status = Some(
                    WebhookStatus::parse(&s)
                        .ok_or_else(|| usage(format!("--status {s}: active or disabled")))?,
                );
            }
            show(&client.update_webhook(&id, &req).await?, output)
        }
        Incoming::Rm { id, force } => {
            let confirmed =
                force || (ui::stdin_tty() && ui::confirm(&format!("Remove webhook {id}?")));
            if !confirmed {
                return Err(usage(format!(
                    "refusing to remove webhook {id} without confirmation: pass --force"
                )));
            }
            client.delete_webhook(&id).await?;
            eprintln!("Webhook {id} removed");
            Ok(())
        }
        Incoming::Deliveries { id, status, limit } => {
            deliveries(client, &id, status, limit, output).await
        }
        Incoming::Delivery { id, event_id } => {
            let d = client.webhook_delivery(&id, &event_id).await?;
            outln!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
    }
}
