//! `islo cp SRC DST`: files and directories between this machine and a sandbox; one side is
//! `NAME:PATH` (relative paths are under `/workspace`). Directories travel as tar.gz; what
//! comes back from a sandbox is unpacked without letting entries climb out of the destination.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use islo_api::ErrorCode;
use islo_client::{Client, ClientError};

use crate::{EXIT_FAILURE, Exit, ui, usage};

/// `NAME:PATH` → (NAME, absolute PATH); `None` for a local path.
pub fn remote(spec: &str) -> Option<(String, String)> {
    let (name, path) = spec.split_once(':')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/workspace/{path}")
    };
    Some((name.to_string(), path))
}

fn bar(total: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    ui::stderr_tty().then(|| {
        let b = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        b.set_style(style);
        b.set_message(what.to_string());
        b
    })
}

/// Run `islo cp`.
pub async fn run(client: &Client, src: &str, dst: &str) -> anyhow::Result<()> {
    match (remote(src), remote(dst)) {
        (None, Some((name, path))) => upload(client, Path::new(src), &name, &path).await,
        (Some((name, path)), None) => download(client, &name, &path, Path::new(dst)).await,
        _ => Err(usage(
            "exactly one of SRC and DST must be a sandbox path, NAME:PATH",
        )),
    }
}

async fn upload(client: &Client, local: &Path, name: &str, path: &str) -> anyhow::Result<()> {
    client.get_sandbox(name).await?;
    let meta = std::fs::metadata(local).map_err(|e| Exit {
        code: crate::EXIT_NOT_FOUND,
        message: format!("{}: {e}", local.display()),
    })?;
    let (file, archive, target) = if meta.is_dir() {
        let tmp = tempfile::NamedTempFile::new()?;
        let gz = flate2::write::GzEncoder::new(tmp.reopen()?, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        tar.append_dir_all(".", local)?;
        tar.into_inner()?.finish()?;
        (tmp.into_temp_path().keep()?, true, path.to_string())
    } else {
        let target = match (path.ends_with('/'), local.file_name()) {
            (true, Some(n)) => format!("{path}{}", n.to_string_lossy()),
            _ => path.to_string(),
        };
        (local.to_path_buf(), false, target)
    };
    let size = std::fs::metadata(&file)?.len();
    let b = bar(
        Some(size),
        &format!("{} → {name}:{target}", local.display()),
    );
    let report: Arc<dyn Fn(u64) + Send + Sync> = match b.clone() {
        Some(b) => Arc::new(move |n| b.set_position(n)),
        None => Arc::new(|_| {}),
    };
    let done = client.upload(name, &target, &file, archive, report).await;
    if archive {
        let _ = std::fs::remove_file(&file);
    }
    if let Some(b) = b {
        b.finish_and_clear();
    }
    done?;
    eprintln!("Copied {} to {name}:{target}", local.display());
    Ok(())
}

async fn download(client: &Client, name: &str, path: &str, local: &Path) -> anyhow::Result<()> {
    client.get_sandbox(name).await?;
    let base = Path::new(path)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let dest = if local.is_dir() {
        local.join(&base)
    } else {
        local.to_path_buf()
    };
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let b = bar(None, &format!("{name}:{path}"));
    let report = |n: u64| {
        if let Some(b) = &b {
            b.set_position(n);
        }
    };
    match client
        .download(name, path, tmp.path(), false, &report)
        .await
    {
        Ok(_) => {
            tmp.persist(&dest)?;
        }
        Err(ClientError::Api { body, .. })
            if body.code == ErrorCode::FileOperationError
                && body.message.contains("is a directory") =>
        {
            client
                .download(name, path, tmp.path(), true, &report)
                .await?;
            unpack(tmp.path(), &dest)?;
        }
        Err(e) if e.code() == Some(ErrorCode::FileNotFound) => {
            return Err(Exit {
                code: crate::EXIT_NOT_FOUND,
                message: e.to_string(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(b) = b {
        b.finish_and_clear();
    }
    eprintln!("Copied {name}:{path} to {}", dest.display());
    Ok(())
}

/// Unpack a directory archive from a sandbox (untrusted) into `dest`.
fn unpack(archive: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive)?));
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    for entry in a.entries()? {
        let mut e = entry?;
        // `unpack_in` refuses `..` and any write whose parent resolves outside `dest`.
        if !e.unpack_in(dest)? {
            return Err(Exit {
                code: EXIT_FAILURE,
                message: format!(
                    "refusing archive entry {:?}: it leaves {}",
                    e.path()?,
                    dest.display()
                ),
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_paths() {
        assert_eq!(remote("box:/etc/x"), Some(("box".into(), "/etc/x".into())));
        assert_eq!(
            remote("box:rel/y"),
            Some(("box".into(), "/workspace/rel/y".into()))
        );
        assert_eq!(remote("./local"), None);
        assert_eq!(remote("dir/with:colon"), None);
        assert_eq!(remote(":x"), None);
    }
}
