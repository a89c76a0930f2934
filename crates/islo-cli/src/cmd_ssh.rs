//! `islo ssh`: `--setup` (a key pair, a certificate from islod, and one marked block in
//! `~/.ssh/config` so plain OpenSSH reaches `NAME.islo`), `--remove`, `proxy HOST PORT` (the
//! block's `ProxyCommand`), and `islo ssh NAME [-- CMD]` as a shortcut for `ssh NAME.islo`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use islo_client::{Client, TunnelEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{EXIT_FAILURE, Exit, connect, usage};

const BEGIN: &str = "# >>> islo: managed by `islo ssh --setup`; remove with `islo ssh --remove`";
const END: &str = "# <<< islo";
/// Renew the certificate when it has less than this left.
const RENEW_SECS: u64 = 30 * 60;

/// Where islo keeps its SSH files.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: connect::config_dir().join("ssh"),
        }
    }
    fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("id_ed25519-cert.pub")
    }
    fn expiry(&self) -> PathBuf {
        self.dir.join("id_ed25519-cert.expires")
    }
    fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
}

fn failure(message: String) -> anyhow::Error {
    Exit {
        code: EXIT_FAILURE,
        message,
    }
    .into()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Create the key pair if missing (with OpenSSH's own ssh-keygen).
fn ensure_key(f: &Files) -> anyhow::Result<()> {
    std::fs::create_dir_all(&f.dir)?;
    std::fs::set_permissions(&f.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    if f.key().is_file() {
        return Ok(());
    }
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "islo"])
        .arg("-f")
        .arg(f.key())
        .status()
        .map_err(|e| {
            failure(format!(
                "running ssh-keygen: {e} (install OpenSSH's client)"
            ))
        })?;
    if !st.success() {
        return Err(failure("ssh-keygen failed to create the key".into()));
    }
    Ok(())
}

/// Have islod sign the public key; write the certificate, its expiry and the host CA.
async fn renew(client: &Client, f: &Files) -> anyhow::Result<String> {
    let public = std::fs::read_to_string(f.key().with_extension("pub"))?;
    let signed = client.ssh_certificate(&public, None).await?;
    std::fs::write(f.cert(), format!("{}\n", signed.certificate))?;
    let expires = time::OffsetDateTime::parse(
        &signed.valid_before,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp())
    .unwrap_or(0);
    std::fs::write(f.expiry(), format!("{expires}\n"))?;
    let line = format!("@cert-authority *.islo {}\n", signed.host_ca_public_key);
    std::fs::write(f.known_hosts(), line)?;
    Ok(signed.valid_before)
}

/// Renew when the certificate is missing or about to expire.
async fn fresh(client: &Client, f: &Files) -> anyhow::Result<()> {
    let expires: u64 = std::fs::read_to_string(f.expiry())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if !f.cert().is_file() || expires < now() + RENEW_SECS {
        renew(client, f).await?;
    }
    Ok(())
}

fn ssh_config_path() -> PathBuf {
    connect::home().join(".ssh/config")
}

/// The user's config without islo's block.
fn without_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end();
        if t == BEGIN {
            inside = true;
        } else if inside && t == END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out.trim_start_matches('\n').to_string()
}

fn block(f: &Files) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let q = |p: &Path| format!("\"{}\"", p.display());
    Ok(format!(
        "{BEGIN}\nHost *.islo\n    User islo\n    ProxyCommand {} ssh proxy %h %p\n    IdentityFile {}\n    CertificateFile {}\n    IdentitiesOnly yes\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n{END}\n\n",
        q(&exe),
        q(&f.key()),
        q(&f.cert()),
        q(&f.known_hosts()),
    ))
}

/// Write `text` to the ssh config atomically, keeping its mode (0600 when new).
fn write_config(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o600);
    let tmp = dir.join(".config.islo-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o777))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Dispatch `islo ssh`.
pub async fn run(a: crate::cli::SshArgs) -> anyhow::Result<i32> {
    if a.remove {
        return remove().map(|()| 0);
    }
    let client = connect::client().await?;
    if a.setup {
        return setup(&client, false).await.map(|()| 0);
    }
    match a.args.as_slice() {
        [p, host, _port] if p == "proxy" => proxy(&client, host).await.map(|()| 0),
        [name, rest @ ..] => {
            let cmd: Vec<String> = rest.iter().skip_while(|a| *a == "--").cloned().collect();
            shortcut(&client, name, &cmd).await
        }
        [] => Err(usage(
            "islo ssh needs a sandbox name, or --setup / --remove",
        )),
    }
}

/// `islo ssh --setup`: idempotent.
pub async fn setup(client: &Client, quiet: bool) -> anyhow::Result<()> {
    let f = Files::new();
    ensure_key(&f)?;
    let until = renew(client, &f).await?;
    let path = ssh_config_path();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    // First: OpenSSH takes the first value it finds, so ours must come before `Host *`.
    write_config(&path, &format!("{}{}", block(&f)?, without_block(&old)))?;
    if !quiet {
        eprintln!(
            "SSH is set up in {}: `ssh NAME.islo`, scp, sftp and rsync reach sandboxes (certificate valid until {until}, renewed automatically)",
            path.display()
        );
    }
    Ok(())
}

/// `islo ssh --remove`.
pub fn remove() -> anyhow::Result<()> {
    let path = ssh_config_path();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if !old.lines().any(|l| l.trim_end() == BEGIN) {
        eprintln!("No islo block in {}.", path.display());
        return Ok(());
    }
    write_config(&path, &without_block(&old))?;
    eprintln!("Removed islo's block from {}.", path.display());
    Ok(())
}

/// `islo ssh proxy HOST PORT`: carry stdin/stdout to the sandbox's SSH server.
pub async fn proxy(client: &Client, host: &str) -> anyhow::Result<()> {
    let name = host
        .strip_suffix(".islo")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| usage(format!("{host} is not a sandbox host name (NAME.islo)")))?;
    fresh(client, &Files::new()).await?;
    let (mut tx, mut rx) = client.ssh_tunnel(name).await?;
    let up = async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.eof().await;
    };
    let down = async move {
        let mut stdout = tokio::io::stdout();
        while let Some(ev) = rx.next().await {
            match ev {
                TunnelEvent::Data(d) => {
                    if stdout.write_all(&d).await.is_err() || stdout.flush().await.is_err() {
                        break;
                    }
                }
                TunnelEvent::Eof => break,
                TunnelEvent::Error(m) => {
                    eprintln!("islo: {name}: {m}");
                    break;
                }
            }
        }
    };
    tokio::select! {
        () = down => {}
        () = up => {}
    }
    Ok(())
}

/// `islo ssh NAME [CMD…]`: OpenSSH with islo's settings, whatever `~/.ssh/config` holds.
pub async fn shortcut(client: &Client, name: &str, command: &[String]) -> anyhow::Result<i32> {
    client.get_sandbox(name).await?;
    let f = Files::new();
    ensure_key(&f)?;
    fresh(client, &f).await?;
    let exe = std::env::current_exe()?;
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    let status = std::process::Command::new("ssh")
        .arg("-F")
        .arg("/dev/null")
        .args([
            "-o",
            &format!("ProxyCommand=\"{}\" ssh proxy %h %p", exe.display()),
        ])
        .args(["-o", &opt("IdentityFile", &f.key())])
        .args(["-o", &opt("CertificateFile", &f.cert())])
        .args(["-o", &opt("UserKnownHostsFile", &f.known_hosts())])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-l",
            "islo",
        ])
        .arg(format!("{name}.islo"))
        .args(command)
        .status()
        .map_err(|e| failure(format!("running ssh: {e} (install OpenSSH's client)")))?;
    Ok(status.code().unwrap_or(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_comes_out_and_nothing_else() {
        let user = "Host example\n    User someone\n";
        let with = format!("{BEGIN}\nHost *.islo\n    User islo\n{END}\n\n{user}");
        assert_eq!(without_block(&with), user);
        assert_eq!(without_block(user), user);
        assert_eq!(without_block(&format!("{user}{BEGIN}\nx\n{END}\n")), user);
    }
}
