"""The dashboard in a real browser: Debian's headless Chromium driven through WebDriver
(selenium), against a real islod (see scripts/client-tests.sh). Screenshots of each page go
to $ISLO_UI_SHOTS."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import unquote

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["ISLO_BASE_URL"].rstrip("/")
KEY = os.environ["ISLO_API_KEY"]
IMAGE = os.environ["ISLO_TEST_IMAGE"]
SHOTS = os.environ.get("ISLO_UI_SHOTS", "target/ui-screenshots")


def api(method, path, body=None, headers=None):
    """The API with the key (what a second client, or the sandbox's user, does meanwhile)."""
    data = json.dumps(body).encode() if body is not None else None
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def raw(method, path, headers):
    """A request as another site's page would make it; its status."""
    req = urllib.request.Request(BASE + path, data=b"{}" if method != "GET" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,800"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=o, service=service)


class Page:
    def __init__(self, d):
        self.d = d
        os.makedirs(SHOTS, exist_ok=True)

    def go(self, hash_):
        self.d.get(f"{BASE}/ui/{hash_}")

    def wait(self, what, cond, timeout=30):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2,
                                 ignored_exceptions=[StaleElementReferenceException]).until(lambda d: cond(d))
        except Exception:
            self.shot(f"failed-{what}")
            raise AssertionError(f"waited for {what}; page: {self.d.find_element(By.TAG_NAME, 'main').text[:2000]}")

    def css(self, sel):
        return self.d.find_element(By.CSS_SELECTOR, sel)

    def text(self, sel):
        """The text of what `sel` finds now ("" while the page re-renders under it)."""
        try:
            return " ".join(e.text for e in self.d.find_elements(By.CSS_SELECTOR, sel))
        except StaleElementReferenceException:
            return ""

    def shot(self, name):
        self.d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))

    def accept_confirm(self):
        WebDriverWait(self.d, 5).until(lambda d: d.switch_to.alert).accept()

    def console_errors(self):
        """Errors in the console, but for the 401 of the wrong key the test itself typed."""
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"
                and not ("/ui/login" in e["message"] and "401" in e["message"])]


def login(p, next_hash):
    p.wait("the login page", lambda d: "#/login" in d.current_url and d.find_elements(By.ID, "api-key"))
    # A wrong key is said so, and the page stays where it was going.
    p.css("#api-key").send_keys("islo_key_not_a_real_one")
    p.css("#login").click()
    p.wait("the wrong key refused", lambda d: "not valid" in p.text("#toast"))
    assert next_hash in unquote(p.d.current_url), p.d.current_url
    p.css("#api-key").clear()
    p.css("#api-key").send_keys(KEY)
    p.css("#login").click()
    p.wait(f"back at {next_hash}", lambda d: d.current_url.endswith(next_hash))


def probe(name, path):
    """An HTTP request from inside the sandbox, through the gateway."""
    cmd = f'printf "GET {path} HTTP/1.0\\r\\nHost: probe.invalid\\r\\n\\r\\n" | nc -w 5 192.0.2.1 80; true'
    api("POST", f"/sandboxes/{name}/exec", {"command": ["sh", "-c", cmd]})


def decision_rows(p):
    return p.text("#decisions tr")


def test_1_walk(p):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    # Not logged in: the login page, then back where we were going.
    p.go("#/sandboxes")
    login(p, "#/sandboxes")
    p.shot("01-sandboxes-empty")
    # Create through the form.
    p.css("#new-name").send_keys(name)
    p.css("#new-image").send_keys(IMAGE)
    p.css("#create button[type=submit]").click()
    p.wait("the new sandbox running in the live list",
           lambda d: "running" in p.text(f'tr[data-name="{name}"]'), timeout=120)
    p.shot("02-sandboxes")
    # Its terminal: type, read it back from the page.
    p.css(f'tr[data-name="{name}"] a').click()
    p.wait("the shell's prompt in the terminal", lambda d: "$" in p.text("#terminal .xterm-rows"))
    p.css("#terminal .xterm-helper-textarea").send_keys("echo hi-$((40+2))" + Keys.ENTER)
    p.wait("hi-42 in the terminal", lambda d: "hi-42" in p.text("#terminal .xterm-rows"))
    p.shot("03-terminal")
    # Files: the browser lists a directory.
    api("POST", f"/sandboxes/{name}/exec", {"command": ["sh", "-c", "mkdir -p /workspace && echo data > /workspace/seen.txt"]})
    p.go(f"#/sandbox/{name}/files?path=/workspace")
    p.wait("a file in the file browser", lambda d: "seen.txt" in p.text("#files"))
    # Upload through the form, download through the file's link.
    local = os.path.join(SHOTS, "upload-me.txt")
    with open(local, "w") as f:
        f.write("uploaded from the browser\n")
    p.css("#upload-file").send_keys(os.path.abspath(local))
    p.css("#upload-file").find_element(By.XPATH, "ancestor::form//button").click()
    p.wait("the uploaded file listed", lambda d: "upload-me.txt" in p.text("#files"))
    href = p.d.find_element(By.LINK_TEXT, "upload-me.txt").get_attribute("href")
    got = p.d.execute_async_script("fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href)
    assert got == "uploaded from the browser\n", got
    p.shot("04-files")
    # A share of a port, listed with its URL.
    p.go(f"#/sandbox/{name}/shares")
    p.wait("the shares tab", lambda d: d.find_elements(By.ID, "share-port"))
    p.css("#share-port").send_keys("8080")
    p.css("#share-port").find_element(By.XPATH, "ancestor::form//button").click()
    p.wait("the share's URL", lambda d: "/s/" in p.text("#tab-shares table"))
    # An exec shows in the logs page.
    api("POST", f"/sandboxes/{name}/exec", {"command": ["echo", "logged-by-api"]})
    p.go(f"#/logs/{name}")
    p.wait("the exec in the logs list", lambda d: "echo logged-by-api" in p.text("#exec-list"))
    p.d.find_element(By.LINK_TEXT, "echo logged-by-api").click()
    p.wait("its output", lambda d: "logged-by-api" in p.text("#exec-output"))
    p.shot("05-logs")
    # The gateway: a request's decision appears live; a deny rule denies the next one.
    p.go("#/gateway")
    p.wait("the decision stream", lambda d: d.find_elements(By.ID, "decisions"))
    time.sleep(1.5)
    probe(name, "/ui-probe-one")
    p.wait("the first decision, live", lambda d: "/ui-probe-one" in decision_rows(p))
    form = p.css("section.profile .rule-add")
    form.find_element(By.NAME, "host_pattern").send_keys("probe.invalid")
    form.find_element(By.NAME, "action").send_keys("deny")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    p.wait("the rule listed", lambda d: "probe.invalid" in p.text("section.profile table"))
    time.sleep(1.5)
    probe(name, "/ui-probe-two")
    p.wait("the second decision, denied",
           lambda d: any("/ui-probe-two" in r.text and "deny" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#decisions tr")))
    p.shot("06-gateway")
    # The rule goes again, through its Delete button and the confirmation.
    rule_row = [r for r in p.d.find_elements(By.CSS_SELECTOR, "section.profile tr") if "probe.invalid" in r.text][0]
    rule_row.find_element(By.CSS_SELECTOR, "button.danger").click()
    p.accept_confirm()
    p.wait("the rule gone", lambda d: "probe.invalid" not in p.text("section.profile table"))
    # Snapshots page.
    p.go("#/snapshots")
    p.wait("the snapshots page", lambda d: "Snapshots" in p.text("h1"))
    p.shot("07-snapshots")
    # A sandbox deleted while its page is open: said so.
    p.go(f"#/sandbox/{name}/details")
    p.wait("its details", lambda d: "Image" in p.text("#tab-details"))
    api("DELETE", f"/sandboxes/{name}")
    p.wait("the deletion said", lambda d: d.find_elements(By.ID, "gone"))
    p.shot("08-deleted")
    # Delete through the list, with its confirmation.
    other = f"ui-{uuid.uuid4().hex[:6]}"
    api("POST", "/sandboxes", {"name": other, "image": IMAGE})
    p.go("#/sandboxes")
    p.wait("the other sandbox", lambda d: "running" in p.text(f'tr[data-name="{other}"]'), timeout=60)
    p.css(f'tr[data-name="{other}"] button[data-action=delete]').click()
    p.accept_confirm()
    p.wait("it gone from the list", lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-name="{other}"]'))
    errors = p.console_errors()
    assert not errors, errors


HOSTILE_PAGE = """<!doctype html><title>waiting</title><script>
fetch("/sandboxes", {headers: {"X-Islo-CSRF": "1"}, credentials: "include"})
  .then(r => { document.title = "reached " + r.status; })
  .catch(() => { document.title = "blocked"; });
</script>"""
COOKIE_CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "cookie=[$HTTP_COOKIE]"\n'


def test_2_a_shared_page_cannot_use_the_dashboard_session(p):
    """A sandbox's web page shared on islod's own origin (path-based share URLs), opened by a
    logged-in dashboard user: its script cannot call the API with the session, and the
    session cookie never reaches the sandbox."""
    name = f"ui-{uuid.uuid4().hex[:6]}"
    api("POST", "/sandboxes", {"name": name, "image": IMAGE})
    try:
        serve = ('mkdir -p /tmp/www/cgi-bin && printf %s "$PAGE" > /tmp/www/index.html && '
                 'printf "$CGI" > /tmp/www/cgi-bin/env.cgi && chmod +x /tmp/www/cgi-bin/env.cgi && '
                 'httpd -p 8080 -h /tmp/www')
        api("POST", f"/sandboxes/{name}/exec",
            {"command": ["sh", "-c", serve], "env": {"PAGE": HOSTILE_PAGE, "CGI": COOKIE_CGI}})
        share = api("POST", f"/sandboxes/{name}/shares", {"port": 8080})
        assert "/s/" in share["url"], share
        p.go("#/sandboxes")  # logged in: the session cookie is set
        assert p.d.get_cookie("islo_session")
        deadline = time.time() + 30
        while True:
            p.d.get(share["url"])
            if p.d.title != "Nothing answers on that port" or time.time() > deadline:
                break
            time.sleep(0.5)
        p.wait("the page's script to finish", lambda d: d.title in ("blocked",) or d.title.startswith("reached"))
        assert p.d.title == "blocked", f"a shared page reached the API with the session: {p.d.title}"
        p.d.get(share["url"] + "cgi-bin/env.cgi")
        body = p.d.find_element(By.TAG_NAME, "body").text
        assert body.startswith("cookie=[") and "islo_session" not in body, body
    finally:
        api("DELETE", f"/sandboxes/{name}")


def test_3_expired_session_and_csrf(p):
    p.go("#/gateway")
    cookie = p.d.get_cookie("islo_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    jar = f"islo_session={cookie['value']}"
    # The session works from the dashboard's own pages only.
    # (An empty profile is refused as invalid, 422: the request got past the session check.)
    assert raw("POST", "/gateway/profiles", {"Cookie": jar, "Content-Type": "application/json", "X-Islo-CSRF": "1"}) == 422
    assert raw("POST", "/gateway/profiles", {"Cookie": jar, "Content-Type": "application/json"}) == 403
    assert raw("GET", "/sandboxes", {"Cookie": jar, "Origin": "http://evil.example"}) == 403
    assert raw("GET", "/sandboxes", {"Cookie": jar, "Sec-Fetch-Site": "cross-site"}) == 403
    assert raw("GET", "/sandboxes", {"Cookie": jar}) == 200
    # An expired session: back to the login, keeping where we were.
    p.d.delete_cookie("islo_session")
    p.go("#/snapshots")
    login(p, "#/snapshots")


def test_4_phone_width_dark_theme_keyboard(p):
    p.d.set_window_size(390, 844)
    p.go("#/sandboxes")
    p.wait("the list", lambda d: d.find_elements(By.ID, "sandbox-rows"))
    overflow = p.d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    p.shot("09-phone")
    assert overflow <= 1, f"the page is {overflow}px wider than a phone"
    p.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    p.d.set_window_size(1280, 800)
    p.go("#/gateway")
    p.wait("the gateway", lambda d: d.find_elements(By.ID, "decisions"))
    bg = p.d.execute_script("return getComputedStyle(document.body).backgroundColor")
    p.shot("10-dark")
    assert bg != "rgb(255, 255, 255)", bg
    # Keyboard: the first Tab reaches the skip link, then the navigation.
    p.d.refresh()
    p.wait("the gateway again", lambda d: d.find_elements(By.ID, "decisions"))
    ActionChains(p.d).send_keys(Keys.TAB).perform()
    assert p.d.switch_to.active_element.get_attribute("class") == "skip"
    ActionChains(p.d).send_keys(Keys.TAB).send_keys(Keys.TAB).perform()
    assert p.d.switch_to.active_element.text == "Sandboxes"


def test_5_islo_dashboard_for_the_local_islod(p):
    """`islo dashboard` against the local islod (unix socket, no key): its forwarder serves the
    browser that opened the printed URL, and nothing else."""
    env = {k: v for k, v in os.environ.items() if k not in ("ISLO_BASE_URL", "ISLO_COMPUTE_URL", "ISLO_API_KEY")}
    proc = subprocess.Popen([os.environ.get("ISLO_BIN", "target/debug/islo"), "dashboard", "--no-open"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert "/ui/login-local?k=" in url, url
        root = url.split("/ui/")[0]
        assert raw_at(root, "GET", "/sandboxes", {}) == 401
        assert raw_at(root, "GET", "/ui/login-local?k=wrong", {}) == 403
        p.d.get(url)
        p.wait("the sandboxes page, no login", lambda d: d.find_elements(By.ID, "sandbox-rows") and "login" not in d.current_url)
        name = f"local-{uuid.uuid4().hex[:6]}"
        p.css("#new-name").send_keys(name)
        p.css("#new-image").send_keys(IMAGE)
        p.css("#create button[type=submit]").click()
        p.wait("it running", lambda d: "running" in p.text(f'tr[data-name="{name}"]'), timeout=120)
        p.d.get(f"{root}/ui/#/sandbox/{name}/terminal")
        p.wait("the shell's prompt in the terminal", lambda d: "$" in p.text("#terminal .xterm-rows"))
        p.css("#terminal .xterm-helper-textarea").send_keys("echo local-$((6*7))" + Keys.ENTER)
        p.wait("its echo through the forwarder", lambda d: "local-42" in p.text("#terminal .xterm-rows"))
        p.shot("11-local-dashboard")
        p.d.get(f"{root}/ui/#/sandboxes")
        p.wait("the list", lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-name="{name}"] button[data-action=delete]'))
        p.css(f'tr[data-name="{name}"] button[data-action=delete]').click()
        p.accept_confirm()
        p.wait("it gone", lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-name="{name}"]'))
    finally:
        proc.terminate()
        proc.wait()


def raw_at(root, method, path, headers):
    try:
        with urllib.request.urlopen(urllib.request.Request(root + path, method=method, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from runner import run
    d = browser()
    try:
        page = Page(d)

        def bind(f):
            def g():
                f(page)
            g.__name__ = f.__name__
            return g

        run("ui", {k: bind(v) for k, v in list(globals().items()) if k.startswith("test_")}, "test_")
    finally:
        d.quit()
