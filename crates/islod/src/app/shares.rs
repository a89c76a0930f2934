//! Shares: a sandbox's port reachable through islod's TCP listener by anyone holding an
//! unguessable URL, until it expires or is revoked. Revoking (or removing the sandbox) also
//! ends the connections already open through it.

use std::collections::HashMap;
use std::sync::Mutex;

use islo_api::{
    CreateShareRequest, SHARE_TTL_DEFAULT, SHARE_TTL_MAX, SHARE_TTL_MIN, SandboxStatus,
    ShareRequestRecord, ShareResponse,
};
use rand::RngCore;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use super::{App, AppError, Tenant};
use crate::store::{SandboxRow, ShareRow};

/// Where share URLs point, and which shares have live connections to cut.
pub struct ShareHub {
    /// `http://HOST:PORT` (path-based: `BASE/s/TOKEN/`) or a URL whose host holds `{token}`
    /// (host-based: `https://{token}.share.example.com`); `None`: islod has no TCP listener.
    base: Option<String>,
    live: Mutex<HashMap<String, watch::Sender<bool>>>,
}

/// What a share's request goes to, and when it must end.
pub struct ShareTarget {
    pub share_id: String,
    pub sandbox: SandboxRow,
    pub port: u16,
    pub expires: OffsetDateTime,
    /// Becomes `true` when the share is revoked.
    pub revoked: watch::Receiver<bool>,
}

/// Why a share's URL serves nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum ShareRefusal {
    /// No such share, or revoked, or expired: the same answer for all three.
    Gone,
    /// The share exists but its sandbox is not running.
    NotRunning(SandboxStatus),
}

impl ShareHub {
    pub fn new(base: Option<String>) -> Self {
        Self {
            base: base.map(|b| b.trim_end_matches('/').to_string()),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The public URL of the share holding `token`.
    pub fn url(&self, token: &str) -> Option<String> {
        let base = self.base.as_deref()?;
        Some(if base.contains("{token}") {
            format!("{}/", base.replace("{token}", token))
        } else {
            format!("{base}/s/{token}/")
        })
    }

    /// Where islod's TCP listener is reached from outside (`http://HOST:PORT`), when shares are
    /// path-based (webhook receivers hang off it too).
    pub fn public_base(&self) -> Option<&str> {
        self.base.as_deref().filter(|b| !b.contains("{token}"))
    }

    /// For host-based URLs: the token a request's `Host` names, if it is a share's host.
    pub fn token_from_host(&self, host: &str) -> Option<String> {
        let base = self.base.as_deref()?;
        let after_scheme = base.split_once("://").map_or(base, |(_, r)| r);
        let template = after_scheme.split('/').next()?.split(':').next()?;
        let (prefix, suffix) = template.split_once("{token}")?;
        let host = host.split(':').next()?.to_ascii_lowercase();
        let token = host.strip_prefix(prefix)?.strip_suffix(suffix)?;
        valid_token(token).then(|| token.to_string())
    }

    fn watch(&self, id: &str) -> watch::Receiver<bool> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(id.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }

    /// Cut the live connections of share `id`.
    pub fn cut(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = live.remove(id) {
            let _ = tx.send(true);
        }
    }
}

fn valid_token(t: &str) -> bool {
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// The share's port and lifetime, checked: 422 naming the field.
fn checked(req: &CreateShareRequest) -> Result<(u16, u64), AppError> {
    let port = u16::try_from(req.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AppError::Validation(format!("port must be 1-65535, got {}", req.port)))?;
    let ttl = match req.ttl_seconds {
        None => SHARE_TTL_DEFAULT,
        Some(t) => u64::try_from(t)
            .ok()
            .filter(|t| (SHARE_TTL_MIN..=SHARE_TTL_MAX).contains(t))
            .ok_or_else(|| {
                AppError::Validation(format!(
                    "ttl_seconds must be {SHARE_TTL_MIN}-{SHARE_TTL_MAX} (1 minute to 7 days), got {t}"
                ))
            })?,
    };
    Ok((port, ttl))
}

impl App {
    fn share_view(&self, s: &ShareRow) -> ShareResponse {
        ShareResponse {
            share_id: s.id.clone(),
            url: self.shares.url(&s.token).unwrap_or_default(),
            port: s.port,
            created_at: s.created_at.clone(),
            expires_at: Some(s.expires_at.clone()),
        }
    }

    /// Share `port` of a running sandbox for `ttl_seconds` (default 24 h).
    pub fn create_share(
        &self,
        t: &Tenant,
        name: &str,
        req: &CreateShareRequest,
    ) -> Result<ShareResponse, AppError> {
        let (port, ttl) = checked(req)?;
        let row = self.get(t, name)?;
        if row.status != SandboxStatus::Running {
            return Err(AppError::Invalid(format!(
                "sandbox {name} is not running (it is {}); start it first with `islo use {name}`",
                row.status.as_str()
            )));
        }
        if self.shares.base.is_none() {
            return Err(AppError::Invalid(
                "shares are served on islod's TCP listener, which is off: start islod with \
                 --listen ADDR (and set share_base_url to the address others reach it at)"
                    .into(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let share = ShareRow {
            id: format!("sh_{}", random_hex(6)),
            sandbox_id: row.id,
            token: random_hex(16),
            port,
            created_at: rfc3339(now),
            expires_at: rfc3339(now + time::Duration::seconds(ttl as i64)),
            revoked_at: None,
        };
        self.store.insert_share(&share)?;
        tracing::info!(sandbox = %name, share = %share.id, port, ttl, "share created");
        Ok(self.share_view(&share))
    }

    /// The sandbox's shares that still serve.
    pub fn list_shares(&self, t: &Tenant, name: &str) -> Result<Vec<ShareResponse>, AppError> {
        let row = self.get(t, name)?;
        let now = OffsetDateTime::now_utc();
        Ok(self
            .store
            .shares_of(&row.id)?
            .iter()
            .filter(|s| parse_time(&s.expires_at).is_some_and(|e| e > now))
            .map(|s| self.share_view(s))
            .collect())
    }

    /// Revoke a share by id or by its URL, cutting its open connections.
    pub fn revoke_share(&self, t: &Tenant, name: &str, id_or_url: &str) -> Result<(), AppError> {
        let row = self.get(t, name)?;
        let id = match self.share_by_url(&row, id_or_url)? {
            Some(id) => id,
            None => id_or_url.to_string(),
        };
        if !self
            .store
            .revoke_share(&row.id, &id, &crate::store::now_rfc3339())?
        {
            return Err(AppError::NotFound(format!(
                "share {id_or_url} of sandbox {name} (see `islo shares {name}`)"
            )));
        }
        self.shares.cut(&id);
        tracing::info!(sandbox = %name, share = %id, "share revoked");
        Ok(())
    }

    fn share_by_url(&self, row: &SandboxRow, s: &str) -> Result<Option<String>, AppError> {
        Ok(self
            .store
            .shares_of(&row.id)?
            .into_iter()
            .find(|sh| self.shares.url(&sh.token).as_deref() == Some(s) || s.contains(&sh.token))
            .map(|sh| sh.id))
    }

    /// Revoke every share of a sandbox being removed.
    pub(super) fn revoke_all_shares(&self, sandbox_id: &str) {
        match self
            .store
            .revoke_shares_of(sandbox_id, &crate::store::now_rfc3339())
        {
            Ok(ids) => ids.iter().for_each(|id| self.shares.cut(id)),
            Err(e) => tracing::error!(sandbox = %sandbox_id, error = %e, "revoking shares"),
        }
    }

    /// The requests served through a share, oldest first (at most `limit`).
    pub fn share_requests(
        &self,
        t: &Tenant,
        name: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<ShareRequestRecord>, AppError> {
        let row = self.get(t, name)?;
        self.store
            .share_requests(&row.id, id, limit.clamp(1, 1000))?
            .ok_or_else(|| AppError::NotFound(format!("share {id} of sandbox {name}")))
    }

    /// What the share holding `token` serves, if it still does.
    pub fn share_target(&self, token: &str) -> Result<ShareTarget, ShareRefusal> {
        if !valid_token(token) {
            return Err(ShareRefusal::Gone);
        }
        let share = match self.store.share_by_token(token) {
            Ok(Some(s)) if s.revoked_at.is_none() => s,
            Ok(_) => return Err(ShareRefusal::Gone),
            Err(e) => {
                tracing::error!(error = %e, "looking up a share");
                return Err(ShareRefusal::Gone);
            }
        };
        let expires = parse_time(&share.expires_at).ok_or(ShareRefusal::Gone)?;
        if expires <= OffsetDateTime::now_utc() {
            return Err(ShareRefusal::Gone);
        }
        let sandbox = match self.store.live_sandbox(&share.sandbox_id) {
            Ok(Some(s)) => s,
            _ => return Err(ShareRefusal::Gone),
        };
        if sandbox.status != SandboxStatus::Running {
            return Err(ShareRefusal::NotRunning(sandbox.status));
        }
        Ok(ShareTarget {
            revoked: self.shares.watch(&share.id),
            share_id: share.id,
            sandbox,
            port: share.port,
            expires,
        })
    }

    /// The public host-based share token named by `host`, if shares are host-based.
    pub fn share_token_from_host(&self, host: &str) -> Option<String> {
        self.shares.token_from_host(host)
    }

    /// Record one request served through a share (a failure is logged, not returned).
    pub fn record_share_request(&self, r: ShareRequestRecord) {
        if let Err(e) = self.store.insert_share_request(&r) {
            tracing::error!(share = %r.share_id, error = %e, "recording a share request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_path_or_host_based() {
        let tok = "0123456789abcdef0123456789abcdef";
        let path = ShareHub::new(Some("http://127.0.0.1:8080/".into()));
        assert_eq!(
            path.url(tok).unwrap(),
            format!("http://127.0.0.1:8080/s/{tok}/")
        );
        assert_eq!(path.token_from_host(&format!("{tok}.x")), None);
        let host = ShareHub::new(Some("https://{token}.share.example.com".into()));
        assert_eq!(
            host.url(tok).unwrap(),
            format!("https://{tok}.share.example.com/")
        );
        let h = format!("{tok}.share.example.com:443");
        assert_eq!(host.token_from_host(&h).as_deref(), Some(tok));
        assert_eq!(host.token_from_host("evil.share.example.com"), None);
        assert_eq!(host.token_from_host(&format!("{tok}.other.com")), None);
        assert!(ShareHub::new(None).url(tok).is_none());
    }

    #[test]
    fn port_and_ttl_are_checked_naming_the_field() {
        let req = |port, ttl| CreateShareRequest {
            port,
            ttl_seconds: ttl,
        };
        assert_eq!(
            checked(&req(8080, None)).unwrap(),
            (8080, SHARE_TTL_DEFAULT)
        );
        assert_eq!(checked(&req(1, Some(60))).unwrap(), (1, 60));
        for (r, field) in [
            (req(0, None), "port"),
            (req(70000, None), "port"),
            (req(80, Some(59)), "ttl_seconds"),
            (req(80, Some(7 * 86400 + 1)), "ttl_seconds"),
        ] {
            let e = checked(&r).unwrap_err();
            assert!(
                matches!(&e, AppError::Validation(m) if m.starts_with(field)),
                "{e}"
            );
        }
    }

    #[test]
    fn revocation_reaches_every_watcher() {
        let hub = ShareHub::new(None);
        let (a, b) = (hub.watch("sh_1"), hub.watch("sh_1"));
        let other = hub.watch("sh_2");
        hub.cut("sh_1");
        assert!(*a.borrow());
        assert!(*b.borrow());
        assert!(!*other.borrow());
    }
}
