"""`islo mcp` driven by the official MCP Python SDK (PyPI `mcp`), over stdio and over
streamable HTTP, against a real islod (see scripts/client-tests.sh)."""
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ISLO = os.environ.get("ISLO_BIN", "target/debug/islo")
IMAGE = os.environ["ISLO_TEST_IMAGE"]  # busybox
PYTHON_IMAGE = os.environ["ISLO_TEST_PYTHON_IMAGE"]
PREFIX = "mcp-t-"


def name():
    return f"{PREFIX}{uuid.uuid4().hex[:8]}"


def stdio(*extra, env=None):
    env = dict(os.environ) if env is None else env
    return Client(StdioServerParameters(command=ISLO, args=["mcp", "--prefix", PREFIX, *extra], env=env))


async def call(c, tool, **args):
    """A tool call that must succeed; its structured result."""
    r = await c.call_tool(tool, args)
    assert not r.is_error, f"{tool}: {r.content[0].text}"
    return r.structured_content


async def refused(c, tool, **args):
    """A tool call that must end in a tool error; its text."""
    r = await c.call_tool(tool, args)
    assert r.is_error, f"{tool} was not refused: {r.structured_content}"
    return r.content[0].text


async def protocol_error(c, tool, args):
    try:
        await c.call_tool(tool, args)
    except MCPError as e:
        return str(e)
    raise AssertionError(f"{tool}{args} did not fail")


def islo(*args):
    return subprocess.run([ISLO, *args], capture_output=True, text=True, check=True).stdout


async def end_to_end(c):
    """The issue's walk: tools listed, a sandbox made, a Python file written and run, its
    output read, the exec seen in `islo logs`, the sandbox deleted."""
    tools = {t.name: t for t in (await c.list_tools()).tools}
    for t in ["create_sandbox", "exec", "write_file", "read_file", "list_directory", "start_process",
              "read_process_output", "stop_sandbox", "pause_sandbox", "delete_sandbox", "list_sandboxes", "save_snapshot",
              "read_audit_log", "read_gateway_decisions"]:
        assert t in tools and tools[t].description and tools[t].input_schema["type"] == "object", t
    assert "timeout_secs" in tools["exec"].input_schema["properties"]
    n = name()
    sb = await call(c, "create_sandbox", name=n, image=PYTHON_IMAGE)
    try:
        assert sb["name"] == n and sb["status"] == "running" and sb["reused"] is False, sb
        again = await call(c, "create_sandbox", name=n)
        assert again["reused"] is True and again["id"] == sb["id"], again
        await call(c, "write_file", sandbox=n, path="/tmp/main.py",
                   content="import sys\nprint('sum', sum(range(10)))\nprint('warn', file=sys.stderr)\n")
        r = await call(c, "exec", sandbox=n, command="python3 /tmp/main.py", cwd="/tmp")
        assert r["exit_code"] == 0 and r["stdout"] == "sum 45\n" and r["stderr"] == "warn\n", r
        assert r["timed_out"] is False and r["truncated"] is False, r
        got = await call(c, "read_file", sandbox=n, path="/tmp/main.py")
        assert got["content"].startswith("import sys") and got["encoding"] == "utf8", got
        listing = await call(c, "list_directory", sandbox=n, path="/tmp")
        assert "main.py" in [e["name"] for e in listing["entries"]], listing
        logs = json.loads(islo("logs", n, "--type", "exec", "-o", "json"))
        assert any(r["exec_id"] == x["exec_id"] and "main.py" in x["command"] for x in logs), logs
        assert n in [s["name"] for s in (await call(c, "list_sandboxes"))["sandboxes"]]
    finally:
        await call(c, "delete_sandbox", sandbox=n)
    names = [s["name"] for s in (await call(c, "list_sandboxes"))["sandboxes"]]
    assert n not in names, names


async def test_stdio_end_to_end():
    async with stdio() as c:
        await end_to_end(c)


async def test_stdio_local_server():
    """Without ISLO_BASE_URL and a key, `islo mcp` uses the local islod on its unix socket,
    as the CLI does."""
    env = {k: v for k, v in os.environ.items() if k not in ("ISLO_BASE_URL", "ISLO_COMPUTE_URL", "ISLO_API_KEY")}
    async with stdio(env=env) as c:
        n = (await call(c, "create_sandbox", image=IMAGE))["name"]
        try:
            r = await call(c, "exec", sandbox=n, command=["echo", "local"])
            assert r["stdout"] == "local\n" and r["exit_code"] == 0, r
        finally:
            await call(c, "delete_sandbox", sandbox=n)


async def test_gvisor_sandbox():
    """An agent can ask for the gvisor class: its commands then see gVisor's kernel."""
    async with stdio() as c:
        n = (await call(c, "create_sandbox", image=IMAGE, isolation="gvisor"))
        try:
            assert n["isolation"]["class"] == "gvisor", n
            r = await call(c, "exec", sandbox=n["name"], command=["uname", "-r"])
            assert r["exit_code"] == 0 and r["stdout"].strip() != os.uname().release, r
        finally:
            await call(c, "delete_sandbox", sandbox=n["name"])


def start_http(*extra, env=None):
    """`islo mcp --http 127.0.0.1:0 …`; the process and its URL."""
    p = subprocess.Popen([ISLO, "mcp", "--prefix", PREFIX, "--http", "127.0.0.1:0", *extra],
                         stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = p.stderr.readline()
    m = re.search(r"(http://\S+/mcp)", line)
    if not m:
        p.kill()
        raise AssertionError(f"no address in {line!r}")
    return p, m.group(1)


async def test_http_end_to_end():
    p, url = start_http()
    try:
        async with Client(url) as c:
            await end_to_end(c)
        # A page in a browser (any Origin) cannot drive it (DNS rebinding).
        req = urllib.request.Request(url, data=b"{}", method="POST", headers={
            "Origin": "http://evil.example", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("a request with an Origin was served")
        except urllib.error.HTTPError as e:
            assert e.code == 403, e.code
    finally:
        p.kill()
        p.wait()


async def test_http_token():
    token = uuid.uuid4().hex
    p, url = start_http(env={"ISLO_MCP_TOKEN": token})
    try:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=5)
            raise AssertionError("served without the token")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(url, http_client=http)) as c:
            assert (await c.list_tools()).tools
    finally:
        p.kill()
        p.wait()
    # Off loopback it will not start without a token.
    r = subprocess.run([ISLO, "mcp", "--http", "0.0.0.0:0"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "ISLO_MCP_TOKEN"}, timeout=30)
    assert r.returncode != 0 and "ISLO_MCP_TOKEN" in r.stderr, r


async def test_bad_input_and_limits():
    async with stdio("--max-sandboxes", "1") as c:
        e = await protocol_error(c, "exec", {"command": "true"})
        assert "sandbox" in e, e
        e = await protocol_error(c, "exec", {"sandbox": "x", "command": "true", "timeout_secs": "soon"})
        assert "timeout_secs" in e, e
        e = await protocol_error(c, "read_file", {"sandbox": "x", "path": "/a", "bogus": 1})
        assert "bogus" in e, e
        e = await protocol_error(c, "no_such_tool", {})
        assert "no_such_tool" in e, e
        # Outside the prefix: refused before islod is asked.
        for tool, args in [("exec", {"sandbox": "prod", "command": "true"}), ("delete_sandbox", {"sandbox": "prod"}),
                           ("create_sandbox", {"name": "prod"}), ("read_file", {"sandbox": "prod", "path": "/etc/passwd"})]:
            text = await refused(c, tool, **args)
            assert "must start with" in text and PREFIX in text, text
        n = await call(c, "create_sandbox", image=IMAGE)
        n = n["name"]
        try:
            assert n.startswith(PREFIX), n
            text = await refused(c, "create_sandbox", image=IMAGE)
            assert "at most 1" in text, text
            # A timeout returns what was printed and says so.
            r = await call(c, "exec", sandbox=n, command="echo before; sleep 30; echo after", timeout_secs=1)
            assert r["timed_out"] is True and r["stdout"] == "before\n", r
            # Output past the cap keeps its end and says it was cut.
            r = await call(c, "exec", sandbox=n, command="seq 1 20000", max_output_bytes=100)
            assert r["truncated"] is True and r["stdout"].endswith("20000\n") and "cut" in r["stdout"], r
            text = await refused(c, "read_file", sandbox=n, path="/no/such/file")
            assert "/no/such/file" in text or "not found" in text.lower(), text
            text = await refused(c, "read_file", sandbox=n, path="../etc/passwd")
            assert "absolute" in text, text
            # A background process that was never started: said so, by name.
            text = await refused(c, "read_process_output", sandbox=n, name="never-started")
            assert "never-started" in text and "does not exist" in text, text
            text = await refused(c, "stop_process", sandbox=n, name="never-started")
            assert "never-started" in text, text
        finally:
            await call(c, "delete_sandbox", sandbox=n)


async def test_background_process_files_and_snapshots():
    async with stdio() as c:
        n = name()
        await call(c, "create_sandbox", name=n, image=IMAGE)
        snap, fork = None, name()
        try:
            p = await call(c, "start_process", sandbox=n, name="counter",
                           command="i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo tick $i; sleep 1; done; exit 7")
            assert p["name"] == "counter" and p["status"] == "running", p
            text = await refused(c, "start_process", sandbox=n, name="counter", command="true")
            assert "still runs" in text, text
            r = await call(c, "read_process_output", sandbox=n, name="counter")
            assert r["status"] == "running" and "tick 1" in r["output"], r
            r = await call(c, "read_process_output", sandbox=n, name="counter", wait_secs=20)
            assert r["status"] == "exited" and r["exit_code"] == 7, r
            assert r["output"] == "tick 1\ntick 2\ntick 3\n", r
            # Binary content round-trips as base64.
            await call(c, "write_file", sandbox=n, path="/tmp/b.bin", content="AP8Q", encoding="base64")
            got = await call(c, "read_file", sandbox=n, path="/tmp/b.bin")
            assert got["encoding"] == "base64" and got["content"] == "AP8Q", got
            # A resource for the same file.
            templates = (await c.list_resource_templates()).resource_templates
            assert templates and "{sandbox}" in templates[0].uri_template, templates
            await call(c, "write_file", sandbox=n, path="/tmp/note.txt", content="kept\n")
            res = await c.read_resource(f"islo://sandboxes/{n}/files/tmp/note.txt")
            assert res.contents[0].text == "kept\n", res
            # A snapshot, and a sandbox started from it.
            snap = (await call(c, "save_snapshot", sandbox=n))["name"]
            assert snap.startswith(n), snap
            f = await call(c, "create_sandbox", name=fork, snapshot=snap)
            assert f["status"] == "running", f
            got = await call(c, "read_file", sandbox=fork, path="/tmp/note.txt")
            assert got["content"] == "kept\n", got
            # The audit log: the list, then one command's output.
            r = await call(c, "exec", sandbox=n, command="echo audited")
            log = await call(c, "read_audit_log", sandbox=n)
            assert any(x["exec_id"] == r["exec_id"] for x in log["commands"]), log
            one = await call(c, "read_audit_log", sandbox=n, exec_id=r["exec_id"])
            assert "audited" in one["output"] and one["command"]["exit_code"] == 0, one
            # The gateway's decision on an outbound request.
            probe = 'printf "GET /mcp-probe HTTP/1.0\\r\\nHost: probe.invalid\\r\\n\\r\\n" | nc -w 5 192.0.2.1 80'
            await call(c, "exec", sandbox=n, command=probe, timeout_secs=20)
            d = await call(c, "read_gateway_decisions", sandbox=n)
            assert any(x["path"] == "/mcp-probe" for x in d["decisions"]), d
            # Paused, then brought back by create_sandbox with its files (and processes).
            paused = await call(c, "pause_sandbox", sandbox=n)
            assert paused["status"] == "paused", paused
            back = await call(c, "create_sandbox", name=n)
            assert back["status"] == "running", back
            got = await call(c, "read_file", sandbox=n, path="/tmp/note.txt")
            assert got["content"] == "kept\n", got
            stopped = await call(c, "stop_sandbox", sandbox=n)
            assert stopped["status"] == "stopped", stopped
        finally:
            await c.call_tool("delete_sandbox", {"sandbox": fork})
            await call(c, "delete_sandbox", sandbox=n)
            if snap:
                islo("snapshot", "rm", "--force", snap)



if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from runner import run
    run("mcp", globals(), "test_")
