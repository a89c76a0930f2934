// The islo dashboard: one page, views as #/ routes, the islod API underneath (same origin,
// session cookie). No framework: elements are built with h(), text is always text.
"use strict";

const $main = document.getElementById("main");
// Each route renders into a root of its own: a view still loading when the user moves on
// writes into its detached root, never into the next view.
const $toast = document.getElementById("toast");
let cleanup = [];

// ---- helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function toast(msg, bad) {
  const d = h("div", { class: bad ? "error" : "" }, msg);
  $toast.append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 4000);
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function mib(b) {
  return b === undefined ? "" : `${(b / 1048576).toFixed(1)} MiB`;
}

const enc = encodeURIComponent;

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Every call: same origin, the session cookie, the CSRF header. 401: back to the login,
// coming back here after.
async function api(method, path, body, raw) {
  const headers = { "X-Islo-CSRF": "1" };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (r.status === 401 && path === "/ui/login") {
    throw new ApiError(400, "that API key is not valid or not active");
  }
  if (r.status === 401) {
    login(location.hash);
    throw new ApiError(401, "your session ended; log in again");
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { const j = await r.json(); msg = j.message || j.detail || msg; } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, msg);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// A live stream (server-sent events), closed when the view goes.
function watch(path, event, onData) {
  const es = new EventSource(path, { withCredentials: true });
  es.addEventListener(event, (e) => onData(JSON.parse(e.data)));
  es.addEventListener("error", () => {
    // Closed by the server (a session that expired answers 401): check once, quietly.
    if (es.readyState === EventSource.CLOSED) api("GET", "/system").catch(() => {});
  });
  cleanup.push(() => es.close());
  return es;
}

function guard(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try { await fn(ev); } catch (e) { if (e.status !== 401) toast(e.message, true); }
  };
}

// ---- routing -------------------------------------------------------------------------------

function login(next) {
  const target = next && !next.startsWith("#/login") ? next : "#/sandboxes";
  location.hash = `#/login?next=${enc(target)}`;
}

const views = {};

async function route() {
  for (const c of cleanup.splice(0)) { try { c(); } catch (_) { /* already gone */ } }
  const hash = location.hash || "#/sandboxes";
  const [path, query] = hash.slice(2).split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const view = views[parts[0]] || views.sandboxes;
  if (view !== views.login) {
    const me = await (await fetch("/ui/session", { credentials: "same-origin" })).json();
    if (!me.authenticated) { login(hash); return; }
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("on", a.dataset.view === parts[0]);
  }
  const root = h("div", { class: "view" });
  $main.replaceChildren(root);
  try {
    await view(parts.slice(1), params, root);
  } catch (e) {
    if (e.status !== 401) root.append(h("p", { class: "error" }, e.message));
  }
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", guard(async () => {
  await api("POST", "/ui/logout");
  login("#/sandboxes");
}));

// ---- login ---------------------------------------------------------------------------------

views.login = async (_parts, params, root) => {
  const next = params.get("next") || "#/sandboxes";
  const key = h("input", { type: "password", id: "api-key", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", onsubmit: guard(async () => {
    await api("POST", "/ui/login", { api_key: key.value });
    location.hash = next;
  }) },
  h("h1", {}, "Log in to islo"),
  h("p", { class: "muted" }, "Use an API key (", h("code", {}, "islod keys create"), " or ", h("code", {}, "islo api-key create"), ")."),
  h("label", { for: "api-key" }, "API key", key),
  h("p", {}, h("button", { type: "submit", id: "login" }, "Log in")));
  root.append(form);
  key.focus();
};

// ---- sandboxes -----------------------------------------------------------------------------

function statusCell(s) {
  return h("span", { class: `status ${s}` }, s);
}

async function profileOptions() {
  const profiles = await api("GET", "/gateway/profiles").catch((e) => { if (e.status === 401) throw e; return []; });
  return [h("option", { value: "" }, "(default)"), ...profiles.map((p) => h("option", { value: p.name }, p.name))];
}

async function createForm() {
  const f = {
    name: h("input", { name: "name", placeholder: "generated", id: "new-name" }),
    image: h("input", { name: "image", placeholder: "server default", id: "new-image", size: 36 }),
    vcpus: h("input", { name: "vcpus", type: "number", min: 1, max: 8, placeholder: "2", size: 4 }),
    memory: h("input", { name: "memory_mb", type: "number", min: 256, max: 8192, step: 256, placeholder: "2048", size: 6 }),
    disk: h("input", { name: "disk_gb", type: "number", min: 1, max: 100, placeholder: "10", size: 4 }),
    profile: h("select", { name: "gateway_profile" }, ...(await profileOptions())),
    sources: h("input", { name: "sources", placeholder: "github://owner/repo, …", size: 30 }),
  };
  const num = (el) => (el.value ? Number(el.value) : undefined);
  return h("form", { class: "row", id: "create", onsubmit: guard(async () => {
    const body = {
      name: f.name.value || undefined, image: f.image.value || undefined,
      vcpus: num(f.vcpus), memory_mb: num(f.memory), disk_gb: num(f.disk),
      gateway_profile: f.profile.value || undefined,
      sources: f.sources.value ? f.sources.value.split(",").map((u) => ({ url: u.trim() })).filter((s) => s.url) : undefined,
    };
    toast("Creating…");
    const sb = await api("POST", "/sandboxes", body);
    toast(`Sandbox ${sb.name} is ${sb.status}`);
    f.name.value = "";
  }) },
  h("label", {}, "Name", f.name), h("label", {}, "Image", f.image), h("label", {}, "CPUs", f.vcpus),
  h("label", {}, "Memory (MiB)", f.memory), h("label", {}, "Disk (GiB)", f.disk),
  h("label", {}, "Gateway profile", f.profile), h("label", {}, "Sources", f.sources),
  h("button", { type: "submit" }, "Create"));
}

async function lifecycle(sb, what) {
  if (what === "delete" && !confirm(`Delete sandbox ${sb.name} and its files? This cannot be undone.`)) return;
  if (what === "stop" && !confirm(`Stop sandbox ${sb.name}? Its processes end; its files stay.`)) return;
  if (what === "delete") await api("DELETE", `/sandboxes/${enc(sb.name)}`);
  else await api("POST", `/sandboxes/${enc(sb.name)}/${what}`);
  toast(`${sb.name}: ${what} done`);
}

function actions(sb) {
  const b = (label, what, cls) => h("button", { type: "button", class: cls || "quiet", "data-action": what,
    onclick: guard(() => lifecycle(sb, what)) }, label);
  return h("span", { class: "row" },
    sb.status === "running" && b("Pause", "pause"),
    sb.status === "running" && b("Stop", "stop"),
    (sb.status === "stopped" || sb.status === "paused") && b("Resume", "resume"),
    b("Delete", "delete", "danger"));
}

views.sandboxes = async (_parts, _params, root) => {
  root.append(h("h1", {}, "Sandboxes"), await createForm());
  const body = h("tbody", { id: "sandbox-rows" });
  root.append(h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ...["Name", "Status", "Image", "CPU", "Memory", "Age", ""].map((t, i) =>
      h("th", { class: i === 2 ? "wide" : "" }, t)))), body)));
  let last = null;
  watch("/sandboxes/-/watch", "sandboxes", (snap) => {
    const rows = snap.sandboxes.map((sb) => {
      const u = snap.usage[sb.id];
      let cpu = "";
      const prev = last && last.usage[sb.id];
      if (u && prev && snap.at_ms > last.at_ms) {
        cpu = `${(((u.cpu_usec - prev.cpu_usec) / 1000 / (snap.at_ms - last.at_ms)) * 100).toFixed(1)}%`;
      }
      return h("tr", { "data-name": sb.name },
        h("td", {}, h("a", { href: `#/sandbox/${enc(sb.name)}` }, sb.name)),
        h("td", {}, statusCell(sb.status)), h("td", { class: "wide" }, sb.image),
        h("td", {}, cpu), h("td", {}, u ? mib(u.memory_bytes) : ""), h("td", {}, ago(sb.created_at)),
        h("td", {}, actions(sb)));
    });
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No sandboxes yet."))]));
    last = snap;
  });
};

// ---- one sandbox ---------------------------------------------------------------------------

const tabs = ["terminal", "files", "sessions", "shares", "snapshots", "details"];

views.sandbox = async (parts, params, root) => {
  const name = parts[0];
  const tab = tabs.includes(parts[1]) ? parts[1] : "terminal";
  let sb;
  try {
    sb = await api("GET", `/sandboxes/${enc(name)}`);
  } catch (e) {
    if (e.status === 404) {
      root.append(h("h1", {}, name), h("p", { class: "banner", id: "gone" }, `Sandbox ${name} does not exist (it may have been deleted).`),
        h("a", { href: "#/sandboxes" }, "Back to sandboxes"));
      return;
    }
    throw e;
  }
  const status = statusCell(sb.status);
  const banner = h("div", { id: "sandbox-banner" });
  root.append(h("h1", {}, sb.name, " ", status), banner, actions(sb),
    h("nav", { class: "tabs", "aria-label": "Sandbox" }, ...tabs.map((t) =>
      h("a", { href: `#/sandbox/${enc(name)}/${t}`, class: t === tab ? "on" : "" }, t[0].toUpperCase() + t.slice(1)))));
  // Its status, live; a deletion while the page is open is said, not failed on.
  watch("/sandboxes/-/watch", "sandboxes", (snap) => {
    const now = snap.sandboxes.find((s) => s.id === sb.id);
    if (!now) {
      banner.replaceChildren(h("p", { class: "banner", id: "gone" }, `Sandbox ${name} was deleted.`));
    } else {
      status.textContent = now.status;
      status.className = `status ${now.status}`;
    }
  });
  const pane = h("section", { id: `tab-${tab}` });
  root.append(pane);
  await tabViews[tab](sb, pane, params);
};

const tabViews = {};

function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

tabViews.terminal = async (sb, pane, params) => {
  const session = params.get("session") || "main";
  const input = h("input", { value: session, id: "session-name", size: 16, pattern: "[A-Za-z0-9._-]+" });
  const box = h("div", { class: "term", id: "terminal" });
  pane.append(h("form", { class: "row", onsubmit: guard(() => {
    location.hash = `#/sandbox/${enc(sb.name)}/terminal?session=${enc(input.value)}`;
  }) }, h("label", {}, "Session", input), h("button", { type: "submit" }, "Attach")), box,
  h("p", { class: "muted" }, "Closing this page detaches; the session keeps running and replays on the next attach."));
  const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const ws = new WebSocket(wsUrl(`/sandboxes/${enc(sb.name)}/sessions/${enc(session)}/attach`), ["islo.pty.v1"]);
  ws.binaryType = "arraybuffer";
  const te = new TextEncoder();
  const frame = (type, bytes) => { const b = new Uint8Array(bytes.length + 1); b[0] = type; b.set(bytes, 1); return b; };
  ws.onopen = () => ws.send(JSON.stringify({ version: 1, size: { rows: term.rows, cols: term.cols }, exec: { command: [] } }));
  ws.onmessage = (m) => {
    const b = new Uint8Array(m.data);
    const body = b.subarray(1);
    if (b[0] === 0 || b[0] === 5) term.write(body);
    else if (b[0] === 2) term.write(`\r\n[session ended: exit ${JSON.parse(new TextDecoder().decode(body)).code}]\r\n`);
    else if (b[0] === 3) term.write(`\r\n[islo: ${new TextDecoder().decode(body)}]\r\n`);
  };
  ws.onclose = () => term.write("\r\n[detached]\r\n");
  term.onData((d) => ws.readyState === 1 && ws.send(frame(0, te.encode(d))));
  term.onResize(({ rows, cols }) => ws.readyState === 1 && ws.send(frame(1, te.encode(JSON.stringify({ rows, cols })))));
  const onResize = () => fit.fit();
  window.addEventListener("resize", onResize);
  cleanup.push(() => { window.removeEventListener("resize", onResize); ws.close(); term.dispose(); });
  term.focus();
};

function parentOf(p) {
  const up = p.replace(/\/[^/]*\/?$/, "");
  return up || "/";
}

tabViews.files = async (sb, pane, params) => {
  const dir = params.get("path") || sb.workdir || "/workspace";
  const here = (p) => `#/sandbox/${enc(sb.name)}/files?path=${enc(p)}`;
  const join = (n) => (dir.endsWith("/") ? dir + n : `${dir}/${n}`);
  const file = h("input", { type: "file", id: "upload-file" });
  pane.append(h("p", {}, h("strong", {}, dir), " ", dir !== "/" && h("a", { href: here(parentOf(dir)) }, "(up)")),
    h("form", { class: "row", onsubmit: guard(async () => {
      if (!file.files.length) return;
      const fd = new FormData();
      fd.append("file", file.files[0]);
      await api("POST", `/sandboxes/${enc(sb.name)}/files?path=${enc(join(file.files[0].name))}`, fd);
      toast(`Uploaded ${file.files[0].name}`);
      route();
    }) }, h("label", {}, "Upload here", file), h("button", { type: "submit" }, "Upload")));
  let list;
  try {
    list = await api("GET", `/sandboxes/${enc(sb.name)}/files-list?path=${enc(dir)}`);
  } catch (e) {
    pane.append(h("p", { class: "error" }, e.message));
    return;
  }
  const rows = list.entries.map((e) => h("tr", {},
    h("td", {}, e.type === "directory" ? h("a", { href: here(join(e.name)) }, `${e.name}/`)
      : e.type === "file" ? h("a", { href: `/sandboxes/${enc(sb.name)}/files?path=${enc(join(e.name))}`, download: e.name }, e.name)
        : e.name),
    h("td", {}, e.type), h("td", {}, e.type === "file" ? String(e.size) : ""),
    h("td", { class: "wide" }, `0${e.mode.toString(8)}`), h("td", { class: "wide" }, new Date(e.modified_unix * 1000).toLocaleString())));
  pane.append(h("div", { class: "scroll" }, h("table", { id: "files" },
    h("thead", {}, h("tr", {}, ...["Name", "Type", "Size", "Mode", "Modified"].map((t, i) => h("th", { class: i > 2 ? "wide" : "" }, t)))),
    h("tbody", {}, ...rows))));
};

tabViews.sessions = async (sb, pane) => {
  const list = await api("GET", `/sandboxes/${enc(sb.name)}/sessions`);
  pane.append(h("table", {}, h("thead", {}, h("tr", {}, ...["Session", "Status", "Clients", "Started", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, ...list.sessions.map((s) => h("tr", {},
      h("td", {}, s.name), h("td", {}, s.status), h("td", {}, String(s.clients)),
      h("td", {}, s.started_at_unix_ms ? new Date(s.started_at_unix_ms).toLocaleString() : ""),
      h("td", { class: "row" },
        h("a", { href: `#/sandbox/${enc(sb.name)}/terminal?session=${enc(s.name)}` }, "Attach"),
        h("button", { type: "button", class: "danger", onclick: guard(async () => {
          if (!confirm(`End session ${s.name}?`)) return;
          await api("DELETE", `/sandboxes/${enc(sb.name)}/sessions/${enc(s.name)}`);
          route();
        }) }, "End")))))));
};

tabViews.shares = async (sb, pane) => {
  const port = h("input", { type: "number", min: 1, max: 65535, required: true, size: 6, id: "share-port" });
  const ttl = h("input", { type: "number", min: 60, placeholder: "3600", size: 8 });
  pane.append(h("form", { class: "row", onsubmit: guard(async () => {
    await api("POST", `/sandboxes/${enc(sb.name)}/shares`, { port: Number(port.value), ttl_seconds: ttl.value ? Number(ttl.value) : undefined });
    route();
  }) }, h("label", {}, "Port", port), h("label", {}, "Expires after (s)", ttl), h("button", { type: "submit" }, "Share")),
  h("p", { class: "muted" }, "Anyone with a share's URL reaches that port until it expires or is revoked."));
  const list = await api("GET", `/sandboxes/${enc(sb.name)}/shares`);
  pane.append(h("table", {}, h("tbody", {}, ...list.map((s) => h("tr", {},
    h("td", {}, h("a", { href: s.url, rel: "noreferrer" }, s.url)), h("td", {}, `port ${s.port}`),
    h("td", {}, s.expires_at ? `until ${new Date(s.expires_at).toLocaleString()}` : ""),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: guard(async () => {
      await api("DELETE", `/sandboxes/${enc(sb.name)}/shares/${enc(s.share_id)}`);
      route();
    }) }, "Revoke")))))));
};

tabViews.snapshots = async (sb, pane) => {
  const n = h("input", { placeholder: `${sb.name}-…`, size: 30 });
  pane.append(h("form", { class: "row", onsubmit: guard(async () => {
    toast("Saving…");
    const s = await api("POST", "/snapshots/", { sandbox_name: sb.name, name: n.value || undefined });
    toast(`Snapshot ${s.name}: ${s.status}`);
    route();
  }) }, h("label", {}, "Snapshot name", n), h("button", { type: "submit" }, "Save snapshot")));
  const all = await api("GET", "/snapshots/?limit=200");
  pane.append(snapshotTable(all.items.filter((s) => s.sandbox_id === sb.id)));
};

tabViews.details = async (sb, pane) => {
  const rows = [["Id", sb.id], ["Image", sb.image], ["Created", sb.created_at], ["Status reason", sb.status_reason],
    ["Workdir", sb.workdir], ["CPUs", sb.spec && sb.spec.vcpus], ["Memory", sb.spec && `${sb.spec.memory_mb} MiB`],
    ["Disk", sb.spec && `${sb.spec.disk_gb} GiB`], ["Gateway profile", sb.gateway_profile_id],
    ["Isolation", sb.isolation && JSON.stringify(sb.isolation)]];
  pane.append(h("dl", {}, ...rows.filter(([, v]) => v !== undefined && v !== null).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])));
  if (sb.setup_steps && sb.setup_steps.length) {
    pane.append(h("h2", {}, "Setup steps"), h("table", {}, h("tbody", {}, ...sb.setup_steps.map((s) =>
      h("tr", {}, h("td", {}, s.name || ""), h("td", {}, s.status), h("td", {}, s.exit_code === undefined ? "" : `exit ${s.exit_code}`))))));
  }
};

// ---- logs ----------------------------------------------------------------------------------

async function sandboxSelect(current, all) {
  const page = await api("GET", "/sandboxes?limit=200");
  const opts = page.items.map((s) => h("option", { value: s.name, selected: s.name === current }, s.name));
  return h("select", { id: "sandbox-select" }, all ? h("option", { value: "" }, "(all)") : h("option", { value: "" }, "(choose)"), ...opts);
}

views.logs = async (parts, _params, root) => {
  const [name, kind, id] = parts;
  const sel = await sandboxSelect(name);
  sel.addEventListener("change", () => { location.hash = `#/logs/${enc(sel.value)}`; });
  root.append(h("h1", {}, "Logs"), h("div", { class: "row" }, h("label", {}, "Sandbox", sel)));
  if (!name) return;
  if (kind === "exec" && id) return showExec(root, name, id);
  if (kind === "agent" && id) return showAgent(root, name, id);
  const execs = await api("GET", `/sandboxes/${enc(name)}/exec-sessions`);
  root.append(h("h2", {}, "Commands and terminal sessions"), h("div", { class: "scroll" }, h("table", { id: "exec-list" },
    h("thead", {}, h("tr", {}, ...["Command", "Kind", "User", "Started", "Exit"].map((t) => h("th", {}, t)))),
    h("tbody", {}, ...execs.map((e) => h("tr", {},
      h("td", {}, h("a", { href: `#/logs/${enc(name)}/exec/${enc(e.exec_id)}` }, e.command)),
      h("td", {}, e.is_interactive ? "terminal" : "exec"), h("td", {}, e.user),
      h("td", {}, new Date(e.first_timestamp).toLocaleString()),
      h("td", {}, e.exit_code === undefined ? (e.ended_at ? "" : "running") : String(e.exit_code))))))));
  const agents = await api("GET", `/sandboxes/${enc(name)}/agent-sessions`).catch(() => []);
  root.append(h("h2", {}, "Agent sessions"));
  if (!agents.length) { root.append(h("p", { class: "muted" }, "None.")); return; }
  const byParent = new Map();
  for (const a of agents) {
    const p = a.place.parent_session_path || "";
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(a);
  }
  const tree = (parent) => h("ul", { class: "tree" }, ...(byParent.get(parent) || []).map((a) => h("li", {},
    h("a", { href: `#/logs/${enc(name)}/agent/${enc(a.place.session_name)}` }, a.first_user_text || a.place.session_name),
    ` — ${a.model} · ${a.event_count} events · ${a.total_input_tokens} in / ${a.total_output_tokens} out tokens`,
    tree(a.place.session_path))));
  root.append(tree(""));
};

async function showExec(root, name, id) {
  const meta = await api("GET", `/sandboxes/${enc(name)}/exec-sessions/${enc(id)}`);
  const out = h("pre", { class: "out", id: "exec-output" });
  root.append(h("h2", {}, meta.command), h("p", { class: "muted" },
    `${meta.user} · ${new Date(meta.first_timestamp).toLocaleString()} · ${meta.ended_at ? `exit ${meta.exit_code ?? "?"}` : "running (following)"}`), out);
  let after = 0;
  const pull = async () => {
    const r = await api("GET", `/sandboxes/${enc(name)}/exec-sessions/${enc(id)}/logs?after_seq=${after}&limit=5000`);
    for (const l of r.logs) {
      after = Math.max(after, l.seq);
      if (l.stream === "resize") continue;
      out.append(l.stream === "stdout" ? l.data : h("span", { class: l.stream === "stderr" ? "stderr" : "note" }, l.data));
    }
  };
  await pull();
  if (meta.is_interactive) {
    const box = h("div", { class: "term", id: "replay" });
    root.append(h("h2", {}, "Replay"), h("button", { type: "button", onclick: guard(() => replay(name, id, box)) }, "Play with timing"), box);
  }
  if (!meta.ended_at) {
    // Followed while it runs: only this page, and only until it ends.
    const timer = setInterval(guard(async () => {
      await pull();
      const m = await api("GET", `/sandboxes/${enc(name)}/exec-sessions/${enc(id)}`);
      if (m.ended_at) clearInterval(timer);
    }), 1000);
    cleanup.push(() => clearInterval(timer));
  }
}

async function replay(name, id, box) {
  const r = await api("GET", `/sandboxes/${enc(name)}/exec-sessions/${enc(id)}/asciinema`, undefined, true);
  const lines = (await r.text()).trim().split("\n");
  const header = JSON.parse(lines[0]);
  box.replaceChildren();
  const term = new Terminal({ cols: header.width || 80, rows: header.height || 24 });
  term.open(box);
  cleanup.push(() => term.dispose());
  const events = lines.slice(1).map((l) => JSON.parse(l));
  const start = performance.now();
  for (const [t, kind, data] of events) {
    const wait = t * 1000 - (performance.now() - start);
    if (wait > 0) await new Promise((ok) => setTimeout(ok, Math.min(wait, 2000)));
    if (kind === "o") term.write(data);
    else if (kind === "r") { const [c, rr] = data.split("x").map(Number); term.resize(c, rr); }
  }
}

async function showAgent(root, name, session) {
  const events = await api("GET", `/sandboxes/${enc(name)}/agent-sessions/${enc(session)}/events?limit=1000`);
  root.append(h("h2", {}, session), h("div", { class: "scroll" }, h("table", { id: "agent-events" }, h("tbody", {},
    ...events.map((e) => h("tr", {}, h("td", {}, new Date(e.timestamp).toLocaleTimeString()), h("td", {}, e.actor),
      h("td", {}, e.event_type), h("td", {}, h("pre", { class: "out" }, e.body.slice(0, 4000)))))))));
}

// ---- gateway -------------------------------------------------------------------------------

views.gateway = async (_parts, _params, root) => {
  root.append(h("h1", {}, "Gateway"));
  const page = await api("GET", "/sandboxes?limit=200");
  const names = new Map(page.items.map((s) => [s.id, s.name]));
  const fSandbox = h("select", { id: "filter-sandbox" }, h("option", { value: "" }, "(all)"), ...page.items.map((s) => h("option", { value: s.id }, s.name)));
  const fHost = h("input", { id: "filter-host", placeholder: "host contains…" });
  const fAction = h("select", { id: "filter-action" }, ...["", "allow", "deny", "error"].map((a) => h("option", { value: a }, a || "(any)")));
  const body = h("tbody", { id: "decisions" });
  let all = [];
  const show = () => {
    const rows = all.filter((e) => (!fSandbox.value || e.sandbox_id === fSandbox.value)
      && (!fHost.value || e.host.includes(fHost.value)) && (!fAction.value || e.action === fAction.value));
    body.replaceChildren(...rows.slice(-300).reverse().map((e) => h("tr", {},
      h("td", {}, new Date(e.at).toLocaleTimeString()), h("td", {}, names.get(e.sandbox_id) || e.sandbox_id.slice(0, 8)),
      h("td", { class: e.action }, e.action), h("td", {}, String(e.status)), h("td", {}, e.method),
      h("td", {}, `${e.scheme}://${e.host}${e.path}`), h("td", { class: "wide" }, e.reason))));
  };
  for (const f of [fSandbox, fHost, fAction]) f.addEventListener("input", show);
  root.append(h("h2", {}, "Decisions (live)"), h("div", { class: "row" }, h("label", {}, "Sandbox", fSandbox),
    h("label", {}, "Host", fHost), h("label", {}, "Action", fAction)),
  h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ...["Time", "Sandbox", "Action", "Status", "Method", "URL", "Reason"]
    .map((t, i) => h("th", { class: i === 6 ? "wide" : "" }, t)))), body)));
  const first = await api("GET", "/gateway/events?limit=200");
  all = first.events;
  show();
  const after = all.length ? all[all.length - 1].id : undefined;
  watch(`/gateway/events/watch${after === undefined ? "" : `?after_id=${after}`}`, "decisions", (evs) => {
    all = all.concat(evs).slice(-1000);
    show();
  });
  await profilesPanel(root);
};

async function profilesPanel(root) {
  root.append(h("h2", {}, "Profiles and rules"));
  const profiles = await api("GET", "/gateway/profiles");
  for (const p of profiles) {
    const d = await api("GET", `/gateway/profiles/${enc(p.id)}`);
    root.append(profileBox(d));
  }
}

function ruleForm(p, rule) {
  const host = h("input", { name: "host_pattern", required: true, value: rule ? rule.host_pattern : "", placeholder: "api.example.com", size: 24 });
  const path = h("input", { name: "path_pattern", value: rule && rule.path_pattern ? rule.path_pattern : "", placeholder: "/v1/*", size: 12 });
  const methods = h("input", { name: "methods", value: rule && rule.methods ? rule.methods.join(",") : "", placeholder: "GET,POST", size: 10 });
  const action = h("select", { name: "action" }, ...["allow", "deny"].map((a) => h("option", { value: a, selected: rule && rule.action === a }, a)));
  const prio = h("input", { name: "priority", type: "number", value: rule ? rule.priority : "", size: 5 });
  return h("form", { class: rule ? "row rule-edit" : "row rule-add", onsubmit: guard(async () => {
    const body = { host_pattern: host.value, path_pattern: path.value || undefined,
      methods: methods.value ? methods.value.split(",").map((m) => m.trim().toUpperCase()) : undefined,
      action: action.value, priority: prio.value ? Number(prio.value) : undefined };
    if (rule) await api("PATCH", `/gateway/profiles/${enc(p.id)}/rules/${enc(rule.id)}`, body);
    else await api("POST", `/gateway/profiles/${enc(p.id)}/rules`, body);
    toast(rule ? "Rule saved" : "Rule added");
    route();
  }) }, h("label", {}, "Host", host), h("label", {}, "Path", path), h("label", {}, "Methods", methods),
  h("label", {}, "Action", action), h("label", {}, "Priority", prio), h("button", { type: "submit" }, rule ? "Save" : "Add rule"));
}

function profileBox(d) {
  const p = d;
  const rules = [...d.rules].sort((a, b) => a.priority - b.priority);
  const move = (i, by) => guard(async () => {
    const order = rules.map((r) => r.id);
    const [r] = order.splice(i, 1);
    order.splice(i + by, 0, r);
    await api("POST", `/gateway/profiles/${enc(p.id)}/rules/reorder`, { rules: order.map((id, n) => ({ rule_id: id, priority: (n + 1) * 10 })) });
    route();
  });
  const rows = rules.map((r, i) => {
    const edit = h("tr", { hidden: true }, h("td", { colspan: 6 }, ruleForm(p, r)));
    return [h("tr", {},
      h("td", {}, String(r.priority)), h("td", {}, r.host_pattern), h("td", {}, r.path_pattern || ""),
      h("td", {}, (r.methods || []).join(",")), h("td", { class: r.action }, r.action),
      h("td", { class: "row" },
        h("button", { type: "button", class: "quiet", "aria-label": "Move up", disabled: i === 0, onclick: move(i, -1) }, "↑"),
        h("button", { type: "button", class: "quiet", "aria-label": "Move down", disabled: i === rules.length - 1, onclick: move(i, 1) }, "↓"),
        h("button", { type: "button", class: "quiet", onclick: () => { edit.hidden = !edit.hidden; } }, "Edit"),
        h("button", { type: "button", class: "danger", onclick: guard(async () => {
          if (!confirm(`Delete the rule for ${r.host_pattern}?`)) return;
          await api("DELETE", `/gateway/profiles/${enc(p.id)}/rules/${enc(r.id)}`);
          route();
        }) }, "Delete"))), edit];
  });
  return h("section", { class: "profile", "data-profile": p.name },
    h("h2", {}, p.name, p.is_default ? " (default)" : "", h("span", { class: "muted" }, ` — otherwise ${p.default_action}`)),
    h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, ...rows.flat()))), ruleForm(p, null));
}

// ---- snapshots -----------------------------------------------------------------------------

function snapshotTable(items) {
  return h("div", { class: "scroll" }, h("table", { id: "snapshots" }, h("tbody", {}, ...items.map((s) => h("tr", {},
    h("td", {}, s.name), h("td", {}, h("span", { class: `status ${s.status}` }, s.status)),
    h("td", { class: "wide" }, s.size_bytes === undefined ? "" : mib(s.size_bytes)), h("td", {}, ago(s.created_at)),
    h("td", { class: "row" },
      h("button", { type: "button", class: "quiet", onclick: guard(async () => {
        const name = prompt(`Name of the new sandbox from ${s.name}:`);
        if (!name) return;
        await api("POST", "/sandboxes", { name, snapshot_name: s.name });
        location.hash = `#/sandbox/${enc(name)}`;
      }) }, "Start sandbox"),
      h("button", { type: "button", class: "danger", onclick: guard(async () => {
        if (!confirm(`Delete snapshot ${s.name}?`)) return;
        await api("DELETE", `/snapshots/${enc(s.name)}`);
        route();
      }) }, "Delete")))))));
}

views.snapshots = async (_parts, _params, root) => {
  const sel = await sandboxSelect("");
  const n = h("input", { size: 30, placeholder: "default: sandbox-date-time" });
  root.append(h("h1", {}, "Snapshots"), h("form", { class: "row", onsubmit: guard(async () => {
    if (!sel.value) throw new Error("choose a sandbox");
    toast("Saving…");
    await api("POST", "/snapshots/", { sandbox_name: sel.value, name: n.value || undefined });
    route();
  }) }, h("label", {}, "Sandbox", sel), h("label", {}, "Name", n), h("button", { type: "submit" }, "Save snapshot")));
  const all = await api("GET", "/snapshots/?limit=200");
  root.append(all.items.length ? snapshotTable(all.items) : h("p", { class: "muted" }, "No snapshots yet."));
};

route();
