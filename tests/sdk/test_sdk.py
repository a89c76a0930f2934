"""The public Islo Python SDK, unmodified, against islod (see scripts/sdk-test.sh)."""
import os
import sys
import tempfile
import time
import uuid

import httpx
from islo import Islo
from islo.core.api_error import ApiError
from islo.custom.exec import exec_and_wait_sync
from islo.custom.files import download_file_to_path, upload_file_from_path

IMAGE = os.environ["ISLO_TEST_IMAGE"]
client = Islo()  # ISLO_BASE_URL, ISLO_COMPUTE_URL, ISLO_API_KEY
sb = client.sandboxes


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_of(e):
    return getattr(e, "status_code", None)


def code_of(e):
    """The error code, whether the SDK parsed the body into its typed ErrorResponse or not."""
    body = e.body
    code = body["code"] if isinstance(body, dict) else getattr(body, "code", None)
    return getattr(code, "value", code)


def test_create_get_list_delete():
    n = name("sdk")
    created = sb.create_sandbox(name=n, image=IMAGE, vcpus=1, memory_mb=256, disk_gb=1, env={"A": "1", "B": None})
    assert created.name == n and created.status == "running", created
    assert created.spec.vcpus == 1 and created.spec.memory_mb == 256
    got = sb.get_sandbox(n)
    assert got.id == created.id
    page = sb.list_sandboxes(name_prefix=n, limit=10)
    assert page.total == 1 and page.items[0].name == n and page.limit == 10 and page.offset == 0
    page = sb.list_sandboxes(status=["stopped"], name_prefix=n)
    assert page.total == 0
    sb.stop_sandbox(n)
    assert sb.get_sandbox(n).status == "stopped"
    sb.delete_sandbox(n)
    gone = sb.get_sandbox_by_id(created.id)
    assert gone.status == "deleted" and gone.deleted_at, gone
    try:
        sb.get_sandbox(n)
        raise AssertionError("deleted sandbox still found by name")
    except ApiError as e:
        assert status_of(e) == 404, e


def test_duplicate_and_validation():
    n = name("dup")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256)
    try:
        try:
            sb.create_sandbox(name=n, image=IMAGE)
            raise AssertionError("duplicate accepted")
        except ApiError as e:
            assert status_of(e) == 409 and code_of(e) == "SANDBOX_ALREADY_EXISTS", e.body
        for bad in [dict(vcpus=9), dict(memory_mb=100), dict(disk_gb=0)]:
            try:
                sb.create_sandbox(name=name("bad"), image=IMAGE, **bad)
                raise AssertionError(f"{bad} accepted")
            except ApiError as e:
                assert status_of(e) == 422 and code_of(e) == "VALIDATION_ERROR", e.body
    finally:
        sb.delete_sandbox(n)


def test_request_id_replay():
    n, rid = name("rid"), uuid.uuid4().hex
    a = sb.create_sandbox(name=n, image=IMAGE, request_id=rid, memory_mb=256)
    b = sb.create_sandbox(name=n, image=IMAGE, request_id=rid, memory_mb=256)
    assert a.id == b.id
    sb.delete_sandbox(n)


def test_exec_async_and_stream():
    n = name("exec")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256, env={"FROM_CREATE": "yes"})
    try:
        r = sb.exec_in_sandbox(n, command=["sh", "-c", "echo $FROM_CREATE $X; echo oops >&2; exit 4"], env={"X": "x"})
        assert r.status == "running" and r.exec_id
        for _ in range(100):
            res = sb.get_exec_result(n, r.exec_id)
            if res.status in ("completed", "failed", "timeout"):
                break
            time.sleep(0.05)
        assert res.status == "completed" and res.exit_code == 4, res
        assert res.stdout == "yes x\n" and res.stderr == "oops\n" and res.truncated is False, res
        # Output past 1 MiB keeps the tail and says so.
        r = sb.exec_in_sandbox(n, command=["sh", "-c", "head -c 1500000 /dev/zero | tr '\\0' a; echo END"])
        for _ in range(200):
            res = sb.get_exec_result(n, r.exec_id)
            if res.status != "running":
                break
            time.sleep(0.05)
        assert res.truncated is True and len(res.stdout) == 1 << 20 and res.stdout.endswith("aEND\n"), len(res.stdout)
        # timeout_secs kills the command.
        r = sb.exec_in_sandbox(n, command=["sleep", "30"], timeout_secs=1)
        time.sleep(1.5)
        for _ in range(40):
            res = sb.get_exec_result(n, r.exec_id)
            if res.status != "running":
                break
            time.sleep(0.05)
        assert res.status == "timeout", res
        # The SDK's stream call returns nothing; read the SSE with its own HTTP client.
        sb.exec_in_sandbox_stream(n, command=["true"])
        base = os.environ["ISLO_COMPUTE_URL"]
        token = httpx.post(f"{base}/auth/token", json={"access_key": os.environ["ISLO_API_KEY"]}).json()["session_token"]
        with httpx.stream("POST", f"{base}/sandboxes/{n}/exec/stream", headers={"Authorization": f"Bearer {token}"},
                          json={"command": ["sh", "-c", "echo one; echo two >&2; exit 3"]}) as resp:
            text = "".join(resp.iter_text())
        assert "event: stdout\ndata: one\n" in text and "event: stderr\ndata: two\n" in text, text
        assert text.rstrip().endswith("event: exit\ndata: 3"), text
    finally:
        sb.delete_sandbox(n)


def test_errors_use_the_reference_body():
    try:
        sb.get_sandbox("no-such-sandbox")
        raise AssertionError("found")
    except ApiError as e:
        assert status_of(e) == 404 and code_of(e) == "SANDBOX_NOT_FOUND", e.body
    bad = Islo(api_key="islo_key_not-a-real-key")
    try:
        bad.sandboxes.list_sandboxes()
        raise AssertionError("a bad key was accepted")
    except Exception as e:  # the SDK fails the token exchange
        assert "401" in str(e) or status_of(e) == 401, e


def token():
    base = os.environ["ISLO_COMPUTE_URL"]
    return httpx.post(f"{base}/auth/token", json={"access_key": os.environ["ISLO_API_KEY"]}).json()["session_token"]


def wait_until(check, what, tries=200):
    for _ in range(tries):
        v = check()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_exec_and_wait_and_files():
    n = name("files")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256)
    try:
        r = exec_and_wait_sync(client, n, ["sh", "-c", "echo hi; echo err >&2; exit 3"], poll_interval=0.05)
        assert (r.stdout, r.stderr, r.exit_code) == ("hi\n", "err\n", 3), r
        base = os.environ["ISLO_COMPUTE_URL"]
        with tempfile.TemporaryDirectory() as tmp, httpx.Client() as http:
            src = os.path.join(tmp, "src")
            with open(src, "wb") as f:
                f.write(os.urandom(200_000))
            upload_file_from_path(http, base, n, src, "/workspace/blob", token=token())
            back = download_file_to_path(http, base, n, "/workspace/blob", os.path.join(tmp, "back"), token=token())
            assert open(src, "rb").read() == open(back, "rb").read()
    finally:
        sb.delete_sandbox(n)


def test_shares():
    n = name("share")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256)
    try:
        sb.exec_in_sandbox(n, command=["sh", "-c", "mkdir -p /tmp/www && echo shared > /tmp/www/index.html && busybox httpd -p 8080 -h /tmp/www"])
        share = client.shares.create_share(n, port=8080, ttl_seconds=3600)
        assert share.share_id.startswith("sh_") and share.port == 8080 and share.expires_at, share
        assert [s.share_id for s in client.shares.list_shares(n)] == [share.share_id]
        body = wait_until(lambda: (lambda r: r.text if r.status_code == 200 else None)(httpx.get(share.url)), "the share")
        assert body == "shared\n", body
        client.shares.revoke_share(n, share.share_id)
        assert client.shares.list_shares(n) == []
        assert httpx.get(share.url).status_code == 404
        try:
            client.shares.create_share(n, port=0)
            raise AssertionError("port 0 accepted")
        except ApiError as e:
            assert status_of(e) == 422, e
    finally:
        sb.delete_sandbox(n)


def test_environments():
    env_name = name("env")
    made = client.environments.create_environment(name=env_name, entries=[
        {"kind": "variable", "key": "STAGE", "value": "sdk"},
        {"kind": "secret", "key": "DB_PASSWORD", "value": "hunter2", "placement": "sandbox_env"},
    ])
    try:
        assert made.name == env_name and not made.is_default
        secret = [e for e in made.entries if e.key == "DB_PASSWORD"][0]
        assert secret.value is None and secret.has_value, secret
        assert env_name in [e.name for e in client.environments.list_environments()]
        assert client.environments.get_environment(made.id).name == env_name
        n = name("withenv")
        sb.create_sandbox(name=n, image=IMAGE, memory_mb=256, environment=env_name)
        try:
            r = exec_and_wait_sync(client, n, ["sh", "-c", "echo $STAGE $DB_PASSWORD"], poll_interval=0.05)
            assert r.stdout == "sdk hunter2\n", r
        finally:
            sb.delete_sandbox(n)
        renamed = client.environments.update_environment(made.id, name=env_name + "-2")
        assert renamed.name == env_name + "-2"
        assert client.environments.set_default_environment(made.id).is_default
    finally:
        client.environments.delete_environment(made.id)


def test_incoming_webhooks():
    n = name("hooked")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256)
    wh = client.webhooks.create_incoming_webhook(
        name="sdk-cleanup",
        auth={"auth_type": "bearer_static", "token": {"name": "t", "value": "sdk-token"}},
        idempotency={"source": "header", "name": "X-Event-Id"},
        target={"target_type": "fixed_sandbox_name", "sandbox_name": n},
        rules=[{"actions": [{"action_type": "delete_sandbox"}]}],
    )
    try:
        assert wh.id.startswith("wh_") and wh.status == "active", wh
        assert wh.id in [w.id for w in client.webhooks.list_incoming_webhooks()]
        assert client.webhooks.get_incoming_webhook(wh.id).name == "sdk-cleanup"
        headers = {"Authorization": "Bearer sdk-token", "X-Event-Id": "e-1"}
        assert httpx.post(wh.receiver_url, json={"hello": 1}, headers={"X-Event-Id": "e-0"}).status_code == 401
        assert httpx.post(wh.receiver_url, json={"hello": 1}, headers=headers).status_code == 202
        assert httpx.post(wh.receiver_url, json={"hello": 1}, headers=headers).status_code == 200
        done = wait_until(lambda: [d for d in client.webhooks.list_webhook_deliveries(wh.id) if d.status == "delivered"], "the delivery")
        detail = client.webhooks.get_webhook_delivery(wh.id, done[0].event_id)
        assert detail.resolved_sandbox_name == n and detail.action_attempts[0].status == "completed", detail
        assert sb.get_sandbox_by_id(detail.resolved_sandbox_id).status == "deleted"
        failed = client.webhooks.list_webhook_deliveries(wh.id, status="failed")
        assert len(failed) == 1 and "verification" in failed[0].last_error, failed
        updated = client.webhooks.update_incoming_webhook(wh.id, status="disabled")
        assert updated.status == "disabled"
    finally:
        client.webhooks.delete_incoming_webhook(wh.id)


def test_lifecycle_sessions_files_and_snapshots():
    n = name("rest")
    sb.create_sandbox(name=n, image=IMAGE, memory_mb=256)
    snap = None
    try:
        # The creation's events: the SDK's call returns nothing; the stream answers.
        sb.sandbox_creation_events(n)
        with httpx.stream("GET", f"{os.environ['ISLO_COMPUTE_URL']}/sandboxes/{n}/events",
                          headers={"Authorization": f"Bearer {token()}"}) as resp:
            text = "".join(resp.iter_text())
        assert '"phase":"ready"' in text, text
        assert sb.get_sandbox(n).creation_phase == "ready"
        # Files one by one and as archives.
        up = sb.upload_file(n, path="/workspace/hello.txt", file=("hello.txt", b"hello sdk\n"))
        assert up is not None
        assert b"".join(sb.download_file(n, path="/workspace/hello.txt")) == b"hello sdk\n"
        sb.download_archive(n, path="/workspace")
        # Sessions.
        sb.create_session(n, name="bg", command=["sh", "-c", "sleep 60"])
        names = [x.name for x in sb.list_sessions(n).sessions]
        assert "bg" in names, names
        sb.kill_session(n, "bg")
        # Stop and resume keep the files.
        sb.stop_sandbox(n)
        assert sb.resume_sandbox(n).status == "running"
        r = exec_and_wait_sync(client, n, ["cat", "/workspace/hello.txt"], poll_interval=0.05)
        assert r.stdout == "hello sdk\n", r
        # Snapshots.
        snap = client.snapshots.create_snapshot(sandbox_name=n, name=name("snap"))
        assert snap.status == "ready", snap
        assert snap.name in [x.name for x in client.snapshots.list_snapshots(limit=50).items]
        assert client.snapshots.get_snapshot(snap.name).id == snap.id
    finally:
        sb.delete_sandbox(n)
        if snap is not None:
            client.snapshots.delete_snapshot(snap.name)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from runner import run
    run("sdk", globals(), "test_")
