//! Typed client of the islod API, over a unix socket (the embedded local server) or HTTP(S).
//! Used by the CLI and the tests; it speaks only `islo-api` types.

mod environments;
mod files;
mod gateway;
mod keys;
mod pty;
mod secrets;
mod shares;
mod snapshots;
mod sse;
mod tunnel;
mod webhooks;

use std::path::PathBuf;

use futures_util::{Stream, StreamExt};
use islo_api::{
    CreateSandboxRequest, ErrorCode, ErrorResponse, ExecRequest, ExecResponse, ExecResultResponse,
    ImagePullEvent, ImagePullRequest, PaginatedSandboxResponse, SandboxResponse, SandboxStatus,
    ServerInfo, TokenRequest, TokenResponse,
};
use serde::de::DeserializeOwned;

pub use files::FileBytes;
pub use pty::{PtyConn, PtyReceiver, PtySender};
pub use sse::{SseEvent, SseParser};
pub use tunnel::{TunnelEvent, TunnelReceiver, TunnelSender};

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    Http(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Http(u) => f.write_str(u),
        }
    }
}

/// Errors of a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", .body.message)]
    Api { status: u16, body: ErrorResponse },
    #[error("cannot reach islod at {endpoint}: {detail}")]
    Transport { endpoint: String, detail: String },
    #[error("unexpected answer from islod: {0}")]
    Decode(String),
    /// The connection ended before the answer did: islod stopped (or the network dropped)
    /// while handling the request.
    #[error("islod stopped while handling this request ({0}); run the command again")]
    Interrupted(String),
}

impl ClientError {
    /// A transport error met after the request reached islod.
    pub fn interrupted(e: &dyn std::error::Error) -> Self {
        Self::Interrupted(error_chain(e))
    }
}

impl ClientError {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }
}

/// One event of a streamed exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStreamEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
}

/// The client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    endpoint: Endpoint,
    bearer: Option<String>,
}

impl Client {
    /// A client for `endpoint`, sending `bearer` (an API key or session token) when given.
    pub fn new(endpoint: Endpoint, bearer: Option<String>) -> Result<Self, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder();
        let base = match &endpoint {
            Endpoint::Unix(p) => {
                // No TLS on a local socket: an empty root store spares every command
                // reading and parsing the host's certificate bundle (~3 ms).
                b = b.unix_socket(p.clone()).tls_certs_only([]);
                "http://islod".to_string()
            }
            Endpoint::Http(u) => u.trim_end_matches('/').to_string(),
        };
        let http = b.build().map_err(|e| ClientError::Transport {
            endpoint: endpoint.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            http,
            base,
            endpoint,
            bearer,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = r.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Transport {
                    endpoint: self.endpoint.to_string(),
                    detail: error_chain(&e),
                }
            } else {
                ClientError::interrupted(&e)
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorResponse>(&text).unwrap_or(ErrorResponse {
            code: if status == 401 {
                ErrorCode::AuthRequired
            } else {
                ErrorCode::InternalError
            },
            message: format!("HTTP {status}: {}", text.trim()),
            request_id: None,
        });
        Err(ClientError::Api { status, body })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(r).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::interrupted(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn token(&self, access_key: &str) -> Result<TokenResponse, ClientError> {
        let body = TokenRequest {
            access_key: access_key.to_string(),
        };
        self.json(self.req(reqwest::Method::POST, "/auth/token").json(&body))
            .await
    }

    /// What islod's host has and lacks.
    pub async fn doctor(&self) -> Result<islo_api::DoctorReport, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/system/doctor"))
            .await
    }

    pub async fn system(&self) -> Result<ServerInfo, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/system")).await
    }

    pub async fn create_sandbox(
        &self,
        req: &CreateSandboxRequest,
    ) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(reqwest::Method::POST, "/sandboxes").json(req))
            .await
    }

    pub async fn get_sandbox(&self, name: &str) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(reqwest::Method::GET, &format!("/sandboxes/{}", seg(name))))
            .await
    }

    pub async fn get_sandbox_by_id(&self, id: &str) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::GET,
            &format!("/sandboxes/-/by-id/{}", seg(id)),
        ))
        .await
    }

    /// One page of sandboxes.
    pub async fn list_sandboxes(
        &self,
        limit: u32,
        offset: u32,
        statuses: &[SandboxStatus],
        name_prefix: Option<&str>,
    ) -> Result<PaginatedSandboxResponse, ClientError> {
        let mut q: Vec<(&str, String)> =
            vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        q.extend(statuses.iter().map(|s| ("status", s.as_str().to_string())));
        if let Some(p) = name_prefix {
            q.push(("name_prefix", p.to_string()));
        }
        self.json(self.req(reqwest::Method::GET, "/sandboxes").query(&q))
            .await
    }

    /// Every sandbox, following pages.
    pub async fn all_sandboxes(
        &self,
        statuses: &[SandboxStatus],
    ) -> Result<Vec<SandboxResponse>, ClientError> {
        let mut out = Vec::new();
        loop {
            let page = self
                .list_sandboxes(200, out.len() as u32, statuses, None)
                .await?;
            let n = page.items.len();
            out.extend(page.items);
            if n == 0 || out.len() as u64 >= page.total {
                return Ok(out);
            }
        }
    }

    pub async fn stop_sandbox(&self, name: &str) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::POST,
            &format!("/sandboxes/{}/stop", seg(name)),
        ))
        .await
    }

    pub async fn pause_sandbox(&self, name: &str) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::POST,
            &format!("/sandboxes/{}/pause", seg(name)),
        ))
        .await
    }

    pub async fn resume_sandbox(&self, name: &str) -> Result<SandboxResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::POST,
            &format!("/sandboxes/{}/resume", seg(name)),
        ))
        .await
    }

    pub async fn delete_sandbox(&self, name: &str) -> Result<(), ClientError> {
        self.send(self.req(
            reqwest::Method::DELETE,
            &format!("/sandboxes/{}", seg(name)),
        ))
        .await
        .map(drop)
    }

    pub async fn exec(&self, name: &str, req: &ExecRequest) -> Result<ExecResponse, ClientError> {
        self.json(
            self.req(
                reqwest::Method::POST,
                &format!("/sandboxes/{}/exec", seg(name)),
            )
            .json(req),
        )
        .await
    }

    pub async fn exec_result(
        &self,
        name: &str,
        exec_id: &str,
    ) -> Result<ExecResultResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::GET,
            &format!("/sandboxes/{}/exec/{}", seg(name), seg(exec_id)),
        ))
        .await
    }

    /// Recorded sessions of a sandbox (name or id), newest first.
    pub async fn exec_sessions(
        &self,
        sandbox: &str,
        since: Option<&str>,
    ) -> Result<Vec<islo_api::ExecSessionResponse>, ClientError> {
        let mut r = self.req(
            reqwest::Method::GET,
            &format!("/sandboxes/{}/exec-sessions", seg(sandbox)),
        );
        if let Some(s) = since {
            r = r.query(&[("since", s)]);
        }
        self.json(r).await
    }

    /// One recorded session.
    pub async fn exec_session(
        &self,
        sandbox: &str,
        exec_id: &str,
    ) -> Result<islo_api::ExecSessionResponse, ClientError> {
        let path = format!("/sandboxes/{}/exec-sessions/{}", seg(sandbox), seg(exec_id));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }

    /// What a recorded session printed.
    pub async fn exec_logs(
        &self,
        sandbox: &str,
        exec_id: &str,
        q: &islo_api::ExecLogsQuery,
    ) -> Result<islo_api::ExecLogsResponse, ClientError> {
        let path = format!(
            "/sandboxes/{}/exec-sessions/{}/logs",
            seg(sandbox),
            seg(exec_id)
        );
        self.json(self.req(reqwest::Method::GET, &path).query(q))
            .await
    }

    /// Agent sessions of a sandbox (name or id), newest first.
    pub async fn agent_sessions(
        &self,
        sandbox: &str,
        q: &islo_api::AgentSessionsQuery,
    ) -> Result<Vec<islo_api::AgentSessionResponse>, ClientError> {
        let path = format!("/sandboxes/{}/agent-sessions", seg(sandbox));
        self.json(self.req(reqwest::Method::GET, &path).query(q))
            .await
    }

    /// Events of one agent session, by time.
    pub async fn agent_session_events(
        &self,
        sandbox: &str,
        session: &str,
        q: &islo_api::AgentEventsQuery,
    ) -> Result<Vec<islo_api::AgentSessionEventResponse>, ClientError> {
        let path = format!(
            "/sandboxes/{}/agent-sessions/{}/events",
            seg(sandbox),
            seg(session)
        );
        self.json(self.req(reqwest::Method::GET, &path).query(q))
            .await
    }

    /// A recorded session as an asciinema v2 recording.
    pub async fn exec_asciinema(
        &self,
        sandbox: &str,
        exec_id: &str,
    ) -> Result<String, ClientError> {
        let path = format!(
            "/sandboxes/{}/exec-sessions/{}/asciinema",
            seg(sandbox),
            seg(exec_id)
        );
        let resp = self.send(self.req(reqwest::Method::GET, &path)).await?;
        resp.text().await.map_err(|e| ClientError::interrupted(&e))
    }

    /// Stream a command's output (byte-exact: the client asks for base64 event data).
    pub async fn exec_stream(
        &self,
        name: &str,
        req: &ExecRequest,
    ) -> Result<impl Stream<Item = Result<ExecStreamEvent, ClientError>>, ClientError> {
        let mut req = req.clone();
        req.stream_encoding = Some("base64".into());
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/sandboxes/{}/exec/stream", seg(name)),
            )
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&req);
        let events = self.sse(r).await?;
        Ok(events.map(|ev| {
            let ev = ev?;
            let b64 = |d: &str| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(d.replace('\n', ""))
                    .map_err(|e| ClientError::Decode(e.to_string()))
            };
            Ok(match ev.event.as_str() {
                "stdout" => ExecStreamEvent::Stdout(b64(&ev.data)?),
                "stderr" => ExecStreamEvent::Stderr(b64(&ev.data)?),
                "exit" => ExecStreamEvent::Exit(
                    ev.data
                        .trim()
                        .parse()
                        .map_err(|_| ClientError::Decode(ev.data.clone()))?,
                ),
                _ => ExecStreamEvent::Error(ev.data),
            })
        }))
    }

    /// A sandbox's creation, as it goes (ends after `ready` or `failed`).
    pub async fn creation_events(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = Result<islo_api::CreationEvent, ClientError>>, ClientError> {
        let path = format!("/sandboxes/{}/events", seg(name));
        let events = self.sse(self.req(reqwest::Method::GET, &path)).await?;
        Ok(events.map(|ev| {
            serde_json::from_str(&ev?.data).map_err(|e| ClientError::Decode(e.to_string()))
        }))
    }

    /// Pull an image ahead of a create, with progress events.
    pub async fn pull_image(
        &self,
        image: &str,
    ) -> Result<impl Stream<Item = Result<ImagePullEvent, ClientError>>, ClientError> {
        let r = self
            .req(reqwest::Method::POST, "/images/pull")
            .json(&ImagePullRequest {
                image: image.to_string(),
            });
        let events = self.sse(r).await?;
        Ok(events.map(|ev| {
            serde_json::from_str(&ev?.data).map_err(|e| ClientError::Decode(e.to_string()))
        }))
    }

    async fn sse(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>>, ClientError> {
        let resp = self.send(r).await?;
        let endpoint = self.endpoint.to_string();
        let bytes = resp.bytes_stream();
        let stream = futures_util::stream::unfold(
            (
                bytes,
                SseParser::default(),
                std::collections::VecDeque::new(),
                endpoint,
            ),
            |(mut bytes, mut parser, mut ready, endpoint)| async move {
                loop {
                    if let Some(ev) = ready.pop_front() {
                        return Some((Ok(ev), (bytes, parser, ready, endpoint)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => ready.extend(parser.push(&chunk)),
                        Some(Err(e)) => {
                            let err = ClientError::interrupted(&e);
                            return Some((Err(err), (bytes, parser, ready, endpoint)));
                        }
                        None => return None,
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }
}

/// Percent-encode one path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_encoded() {
        assert_eq!(super::seg("demo-1"), "demo-1");
        assert_eq!(super::seg("../x y"), "..%2Fx%20y");
    }
}
