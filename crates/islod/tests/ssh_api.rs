//! Certificate signing over the API: authenticated, validated, bound to the caller's tenant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";

#[tokio::test]
async fn certificates_are_signed_for_the_caller_only_with_valid_input() {
    let s = server().await;
    let a = s.client("alpha");
    let cert = a.ssh_certificate(KEY, Some(600)).await.unwrap();
    assert!(
        cert.certificate
            .starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{}",
        cert.certificate
    );
    assert_eq!(cert.principals, ["islo", "root"]);
    assert!(cert.host_ca_public_key.starts_with("ssh-ed25519 "));
    let again = s.client("beta").ssh_certificate(KEY, None).await.unwrap();
    assert_eq!(
        again.host_ca_public_key, cert.host_ca_public_key,
        "one host CA per installation"
    );

    let e = a.ssh_certificate("not a key", None).await.unwrap_err();
    assert!(matches!(&e, ClientError::Api { status: 422, .. }), "{e}");
    for ttl in [0, 7 * 24 * 3600] {
        let e = a.ssh_certificate(KEY, Some(ttl)).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Api { status: 422, .. }),
            "{ttl}: {e}"
        );
    }
    let anonymous = Client::new(Endpoint::Http(s.tcp.clone()), None).unwrap();
    let e = anonymous.ssh_certificate(KEY, None).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::AuthRequired);
    let mode = std::fs::metadata(s.dir.path().join("ssh/user_ca")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}
