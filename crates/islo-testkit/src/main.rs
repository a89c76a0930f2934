//! `islo-testkit`: build a test image from a directory and push it.
//!
//! `islo-testkit image ROOTFS DEST...` pushes ROOTFS as a one-layer image to every DEST
//! (`host:port/repo:tag`).

use std::path::Path;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, rootfs, dests @ ..] = args.as_slice() else {
        bail!("usage: islo-testkit image ROOTFS DEST...");
    };
    if cmd != "image" || dests.is_empty() {
        bail!("usage: islo-testkit image ROOTFS DEST...");
    }
    let layer =
        islo_testkit::oci::layer_from_dir(Path::new(rootfs)).context("building the layer")?;
    let dir = tempfile::tempdir()?;
    let env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
    ];
    islo_testkit::oci::write_layout(dir.path(), &[layer], &env, "latest")?;
    for d in dests {
        islo_testkit::oci::push(dir.path(), "latest", d)?;
        eprintln!("pushed {d}");
    }
    Ok(())
}
