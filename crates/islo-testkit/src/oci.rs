//! Real OCI image layouts, built without a container engine.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// A gzip-compressed layer and the digest of its uncompressed tar (the config's diff_id).
pub struct Layer {
    pub gz: Vec<u8>,
    pub diff_id: String,
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Compress a finished tar stream into a layer.
pub fn layer_from_tar(tar: &[u8]) -> anyhow::Result<Layer> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(tar)?;
    Ok(Layer {
        gz: gz.finish()?,
        diff_id: sha(tar),
    })
}

/// A layer holding `rootfs` (symlinks kept as links; contents of `dev/` left out).
pub fn layer_from_dir(rootfs: &Path) -> anyhow::Result<Layer> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for entry in
        std::fs::read_dir(rootfs).with_context(|| format!("reading {}", rootfs.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let path = entry.path();
        if name == "dev" || name == "proc" || name == "sys" {
            b.append_dir(&name, &path)?;
        } else if entry.file_type()?.is_dir() {
            b.append_dir_all(&name, &path)?;
        } else {
            b.append_path_with_name(&path, &name)?;
        }
    }
    layer_from_tar(&b.into_inner()?)
}

/// Write an OCI image layout at `out` with `layers` (lowest first), tagged `tag`.
pub fn write_layout(out: &Path, layers: &[Layer], env: &[&str], tag: &str) -> anyhow::Result<()> {
    let manifest = write_image(out, layers, env, "amd64")?;
    write_index(out, &[manifest], tag)
}

/// Write a multi-platform image (an image index) at `out`: one image per `(arch, layers)`.
pub fn write_multi_arch_layout(
    out: &Path,
    images: &[(&str, Vec<Layer>)],
    tag: &str,
) -> anyhow::Result<()> {
    let mut manifests = Vec::new();
    for (arch, layers) in images {
        manifests.push(write_image(out, layers, &["PATH=/bin"], arch)?);
    }
    let blobs = out.join("blobs/sha256");
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests
    })
    .to_string();
    let d = sha(index.as_bytes());
    std::fs::write(blobs.join(d.trim_start_matches("sha256:")), &index)?;
    let desc = serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": index.len()});
    write_index(out, &[desc], tag)
}

fn write_index(out: &Path, manifests: &[serde_json::Value], tag: &str) -> anyhow::Result<()> {
    let mut manifests = manifests.to_vec();
    for m in &mut manifests {
        m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(out.join("index.json"), index.to_string())?;
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// Write the blobs of one image; returns its manifest descriptor (with its platform).
fn write_image(
    out: &Path,
    layers: &[Layer],
    env: &[&str],
    arch: &str,
) -> anyhow::Result<serde_json::Value> {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |data: &[u8]| -> anyhow::Result<String> {
        let d = sha(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data)?;
        Ok(d)
    };
    let mut descs = Vec::new();
    for l in layers {
        let d = put(&l.gz)?;
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.gz.len()
        }));
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": env, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()}
    })
    .to_string();
    let cd = put(config.as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs
    })
    .to_string();
    let md = put(manifest.as_bytes())?;
    Ok(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
        "platform": {"architecture": arch, "os": "linux"}
    }))
}

/// Push the layout at `layout` (tag `tag`) to `dest` (`host:port/repo:tag`) over plain HTTP.
pub fn push(layout: &Path, tag: &str, dest: &str) -> anyhow::Result<()> {
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .context("running skopeo (install it with scripts/test-env.sh)")?;
    if !out.status.success() {
        bail!(
            "skopeo copy to {dest}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Build and push an image made of `layers` in one step; returns its reference.
pub fn publish(layers: &[Layer], repo_tag: &str) -> anyhow::Result<String> {
    let reg = crate::registry::require();
    let dir = tempfile::tempdir()?;
    write_layout(
        dir.path(),
        layers,
        &["PATH=/usr/local/bin:/usr/bin:/bin"],
        "latest",
    )?;
    let dest = format!("{reg}/{repo_tag}");
    push(dir.path(), "latest", &dest)?;
    Ok(dest)
}
