"""Deploying the annotation app for a team: the shipped systemd unit and Caddyfile, the path prefix
behind a real reverse proxy, the security headers, cookie flags, and the warning about plain HTTP.

The proxy test runs the app as the unit runs it (`critic annotate --root-path /annotate --behind-proxy`)
behind Caddy with a Caddyfile derived from the shipped one, and logs in through it with a browser.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from browser import PASSWORD, TIMEOUT_MS, browser, expect, free_port, log_in, needs_browser
from fastapi.testclient import TestClient
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from critic.annotation_app.auth import create_user
from critic.annotation_app.db import init_db, make_engine
from critic.annotation_app.middleware import SECURITY_HEADERS, SecurityHeaders, normalize_root_path
from critic.annotation_app.server import create_app
from critic.commands import annotate as annotate_commands

DEPLOY = Path(__file__).resolve().parent.parent / "annotation_app" / "deploy"
PREFIX = "/annotate"
EXPECTED_HEADERS = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)


# --- the systemd unit -------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_unit_verifies(tmp_path):
    """The shipped unit, with this venv's `critic` and an existing user, passes `systemd-analyze verify`
    without a warning; the unit keeps the app on loopback behind the proxy and restarts it on failure."""
    text = (DEPLOY / "critic-annotate.service").read_text()
    assert "--root-path /annotate --behind-proxy" in text and "--host 127.0.0.1" in text
    assert re.search(r"^Restart=on-failure$", text, re.M)
    critic = Path(sys.executable).with_name("critic")
    unit = tmp_path / "critic-annotate.service"
    unit.write_text(
        re.sub(r"^ExecStart=\S+/critic ", f"ExecStart={critic} ", text, flags=re.M)
        .replace("User=critic", "User=root")
        .replace("Group=critic", "Group=root")
    )
    assert f"ExecStart={critic} annotate" in unit.read_text()
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stderr and str(unit) not in done.stderr, done.stderr  # no warning on it


# --- headers and cookies ----------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'annotations.db'}")
    init_db(engine)
    with Session(engine) as session:
        create_user(session, "alice", "annotator", PASSWORD)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_every_response_has_the_security_headers_and_no_cookie(engine, prefix):
    with TestClient(create_app(engine, lambda: None, prefix)) as client:
        page = client.get(f"{prefix}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        script = re.search(r'src="\./(assets/[^"]+\.js)"', page.text)
        assert script, "the page names no script of its own"
        responses = [
            page,
            client.get(f"{prefix}/{script.group(1)}"),
            client.get(f"{prefix}/config"),
            client.get(f"{prefix}/api/health"),
            client.post(f"{prefix}/api/login", json={"name": "alice", "password": "wrong password"}),
            client.post(f"{prefix}/api/login", json={"name": "alice", "password": PASSWORD}),
            client.get(f"{prefix}/api/no-such-route"),
        ]
        assert [r.status_code for r in responses[:4]] == [200, 200, 200, 200]
        assert responses[4].status_code in (400, 401) and responses[5].status_code == 200
        assert responses[6].status_code == 404
        for response in responses:
            assert_security_headers(response)
            assert "set-cookie" not in response.headers  # the login token lives in localStorage
        if prefix:
            assert client.get(f"{prefix}/config").json()["root"].endswith(PREFIX)


def cookie_app(behind_proxy: bool):
    """A route that sets a bare cookie, wrapped as the server wraps the app, behind uvicorn's handling
    of X-Forwarded-Proto trusting only the test client (the "proxy")."""

    async def set_cookie(request):
        response = PlainTextResponse("ok")
        response.set_cookie("flavour", "plain")
        response.set_cookie("already", "safe", httponly=True, secure=True)
        return response

    inner = Starlette(routes=[Route("/", set_cookie)])
    return ProxyHeadersMiddleware(SecurityHeaders(inner, behind_proxy), trusted_hosts="testclient")


def set_cookies(response: httpx.Response) -> dict[str, set[str]]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        found[name] = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    return found


def test_cookies_are_httponly_and_secure_over_tls():
    with TestClient(cookie_app(behind_proxy=False)) as client:
        plain = set_cookies(client.get("/"))
        assert "httponly" in plain["flavour"] and "secure" not in plain["flavour"]
        via_tls_proxy = set_cookies(client.get("/", headers={"X-Forwarded-Proto": "https"}))
        assert {"httponly", "secure"} <= via_tls_proxy["flavour"]
        assert via_tls_proxy["already"] >= {"httponly", "secure"}
    with TestClient(cookie_app(behind_proxy=True)) as client:
        assert {"httponly", "secure"} <= set_cookies(client.get("/"))["flavour"]


def test_root_path_is_normalized():
    assert [normalize_root_path(p) for p in ("", "/", "annotate", "/annotate/", " /a/b ")] == [
        "",
        "",
        PREFIX,
        PREFIX,
        "/a/b",
    ]
    with pytest.raises(ValueError):
        normalize_root_path("/annotate?x=1")


# --- the warning about plain HTTP -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["--host", "0.0.0.0"], True),
        (["--host", "192.168.1.5"], True),
        (["--host", "annotate.example.org"], True),
        (["--host", "0.0.0.0", "--behind-proxy"], False),
        (["--host", "127.0.0.1"], False),
        (["--host", "localhost"], False),
        (["--host", "::1"], False),
        ([], False),
    ],
)
def test_plain_http_beyond_loopback_warns_once(monkeypatch, tmp_path, args, warned):
    served = []
    monkeypatch.setattr("critic.annotation_app.server.serve", lambda *a: served.append(a))
    db = f"sqlite:///{tmp_path / 'annotations.db'}"
    result = CliRunner().invoke(annotate_commands.app, ["--db", db, "--root-path", "annotate/", *args])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    if warned:
        assert len(warnings) == 1, result.stderr
        assert (
            "unencrypted" in warnings[0] and "passwords" in warnings[0] and "Run it for a team" in warnings[0]
        )
    else:
        assert warnings == [], result.stderr
    ((url, host, port, _model, _reward, root_path, behind_proxy),) = served
    assert root_path == PREFIX and behind_proxy == ("--behind-proxy" in args)


# --- behind a real Caddy ----------------------------------------------------------------------------


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    """Until `url` answers 200; fails with the process's log if it exits or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited: {log.read_text()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no answer from {url} in {seconds:.0f} s: {log.read_text()}")


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def behind_caddy(engine, tmp_path) -> Iterator[str]:
    """The app as the unit runs it, behind Caddy with the shipped Caddyfile's site address replaced by
    a local plain-HTTP one; yields the proxy's base URL (no trailing slash)."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("needs caddy (apt-get install caddy)")
    app_port, proxy_port = free_port(), free_port()
    shipped = (DEPLOY / "Caddyfile").read_text()
    assert "annotate.example.org {" in shipped and "reverse_proxy 127.0.0.1:7860" in shipped
    config = tmp_path / "Caddyfile"
    config.write_text(
        "{\n\tadmin off\n}\n"
        + shipped.replace("annotate.example.org {", f"http://127.0.0.1:{proxy_port} {{").replace(
            "127.0.0.1:7860", f"127.0.0.1:{app_port}"
        )
    )
    env = os.environ | {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    db = str(engine.url)
    app_command = [
        *(sys.executable, "-m", "critic.cli", "annotate", "--db", db, "--port", str(app_port)),
        *("--root-path", PREFIX, "--behind-proxy"),
    ]
    with (
        running(app_command, env, tmp_path / "app.log") as app,
        running(
            [caddy, "run", "--config", str(config), "--adapter", "caddyfile"], env, tmp_path / "caddy.log"
        ) as proxy,
    ):
        wait_for(f"http://127.0.0.1:{app_port}{PREFIX}/api/health", app, tmp_path / "app.log")
        base = f"http://127.0.0.1:{proxy_port}"
        wait_for(f"{base}{PREFIX}/api/health", proxy, tmp_path / "caddy.log")
        yield base


@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_app_under_a_prefix_behind_caddy(behind_caddy):
    base = behind_caddy
    with httpx.Client(base_url=base, timeout=60) as client:
        health = client.get(f"{PREFIX}/api/health")
        assert health.status_code == 200 and health.json() == {"ok": True}
        assert_security_headers(health)
        page = client.get(f"{PREFIX}/")
        assert page.status_code == 200 and "login-name" in page.text
        assert_security_headers(page)
        # Gradio's page takes its URLs from here: the proxy's address with the prefix.
        assert f'"root":"{base}{PREFIX}"' in page.text.replace(" ", "")
        scripts = re.findall(r'src="\./(assets/[^"]+\.js)"', page.text)
        assert scripts
        for script in scripts:
            asset = client.get(f"{PREFIX}/{script}")
            assert asset.status_code == 200 and "javascript" in asset.headers["content-type"], script
        assert client.get(f"{PREFIX}/config").json()["root"] == f"{base}{PREFIX}"
        login = client.post(f"{PREFIX}/api/login", json={"name": "alice", "password": PASSWORD})
        assert login.status_code == 200 and login.json()["token"]
        outside = client.get("/", follow_redirects=False)  # only the prefix reaches the app
        assert outside.status_code == 308 and outside.headers["location"] == f"{PREFIX}/"


@needs_browser
@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_browser_login_through_caddy(behind_caddy):
    base = behind_caddy
    failed: list[str] = []
    with browser() as chromium:
        page = chromium.new_page()
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # (a reload aborts the open event streams: ERR_ABORTED is the browser's doing, not the proxy's)
        page.on(
            "requestfailed",
            lambda r: None if "ERR_ABORTED" in (r.failure or "") else failed.append(f"{r.failure} {r.url}"),
        )
        log_in(page, f"{base}{PREFIX}/", "alice")
        page.reload()  # the stored token is re-resolved through the proxy on load
        expect(page.locator("#who")).to_contain_text("Logged in as alice", timeout=TIMEOUT_MS)
        assert page.url.startswith(f"{base}{PREFIX}/")
    assert failed == [], failed  # every asset, queue and API call went through the prefix
