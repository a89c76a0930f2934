//! Images end to end: cache reuse, whiteouts, hostile layers refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr, stdout};
use islo_testkit::oci;

fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> oci::Layer {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    oci::layer_from_tar(&b.into_inner().unwrap()).unwrap()
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = h.as_old_mut().name.as_mut();
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// What `POST /images/pull` reports for `image`.
fn pull_events(
    env: &Env,
    image: &str,
) -> Vec<Result<islo_api::ImagePullEvent, islo_client::ClientError>> {
    let client = islo_client::Client::new(
        islo_client::Endpoint::Unix(env.state().join("islod.sock")),
        None,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        client
            .pull_image(image)
            .await
            .unwrap()
            .collect::<Vec<_>>()
            .await
    })
}

fn busybox_layer() -> oci::Layer {
    tar_with(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        b.append_path_with_name("/bin/busybox", "bin/busybox")
            .unwrap();
        for applet in ["sh", "cat", "ls", "echo"] {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, format!("bin/{applet}"), "busybox")
                .unwrap();
        }
    })
}

#[test]
fn second_sandbox_of_an_image_pulls_nothing() {
    let env = Env::new();
    assert!(env.sh("one", "true").status.success());
    let layers = || {
        std::fs::read_dir(env.state().join("images/layers"))
            .unwrap()
            .count()
    };
    let before = layers();
    assert!(env.sh("two", "true").status.success());
    assert_eq!(layers(), before);
    // The pull endpoint reports the cache hit.
    let events = pull_events(&env, &env.busybox());
    assert!(
        matches!(
            events.last(),
            Some(Ok(islo_api::ImagePullEvent::Done { cached: true, .. }))
        ),
        "{events:?}"
    );
}

#[test]
fn whiteouts_and_opaque_directories() {
    let env = Env::new();
    let base = busybox_layer();
    let lower = tar_with(|b| {
        file(b, "etc/motd", b"old");
        file(b, "data/a", b"a");
        file(b, "data/b", b"b");
        file(b, "keep/x", b"x");
    });
    let upper = tar_with(|b| {
        file(b, "etc/.wh.motd", b"");
        file(b, "data/.wh..wh..opq", b"");
        file(b, "data/c", b"c");
    });
    let image = oci::publish(&[base, lower, upper], "islo-test/whiteouts:latest").unwrap();
    let o = env.islo(&[
        "use",
        "wh",
        "-i",
        &image,
        "--",
        "sh",
        "-c",
        "ls /etc/motd 2>/dev/null; ls /data; cat /keep/x",
    ]);
    assert_eq!(stdout(&o), "c\nx", "{}", stderr(&o));
}

#[test]
fn hostile_layers_are_refused_and_leave_nothing() {
    let env = Env::new();
    let target = env.dir.path().join("escape-target");
    std::fs::create_dir(&target).unwrap();
    let cases = [
        (
            "dotdot",
            tar_with(|b| file(b, "../../../../../../tmp/islo-escaped", b"x")),
        ),
        (
            "symlink",
            tar_with(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, "etc", &target).unwrap();
                file(b, "etc/pwned", b"x");
            }),
        ),
    ];
    for (name, layer) in cases {
        let image = oci::publish(
            &[busybox_layer(), layer],
            &format!("islo-test/evil-{name}:latest"),
        )
        .unwrap();
        let o = env.islo(&["use", name, "-i", &image, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("refused"), "{name}: {}", stderr(&o));
        let o = env.islo(&["status", name]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{name}: a refused create leaves no sandbox"
        );
    }
    assert!(!std::path::Path::new("/tmp/islo-escaped").exists());
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "nothing written through the symlink"
    );
    assert_eq!(env.ok(&["ls", "-o", "json"]).trim(), "[]");
}

#[test]
fn manifest_lists_pick_linux_amd64_and_digests_pull() {
    let env = Env::new();
    let arch_layer = |arch: &str| tar_with(|b| file(b, "arch", arch.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let images = [
        ("arm64", vec![busybox_layer(), arch_layer("arm64")]),
        ("amd64", vec![busybox_layer(), arch_layer("amd64")]),
    ];
    oci::write_multi_arch_layout(dir.path(), &images, "latest").unwrap();
    let image = format!("{}/islo-test/multiarch:latest", env.registry);
    oci::push(dir.path(), "latest", &image).unwrap();
    let o = env.islo(&["use", "multi", "-i", &image, "--", "cat", "/arch"]);
    assert_eq!(stdout(&o), "amd64", "{}", stderr(&o));

    // The same image by digest, as `repo@sha256:…`.
    let last = pull_events(&env, &image).pop();
    let Some(Ok(islo_api::ImagePullEvent::Done { digest, .. })) = last else {
        panic!("{last:?}")
    };
    let by_digest = format!("{}/islo-test/multiarch@{digest}", env.registry);
    let o = env.islo(&["use", "pinned", "-i", &by_digest, "--", "cat", "/arch"]);
    assert_eq!(stdout(&o), "amd64", "{}", stderr(&o));
    assert!(env.ok(&["status", "pinned"]).contains(&digest));
}
