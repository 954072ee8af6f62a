"""The annotation server's HTTP layer: whose address a login is counted and audited under (forwarded
headers only behind a proxy, only from it), the body limit on the bytes actually sent, Gradio's upload
and file routes behind a login, and compressed pages."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from browser import PASSWORD, free_port, running
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from critic.annotation_app import server
from critic.annotation_app.api import MAX_BODY
from critic.annotation_app.auth import create_user
from critic.annotation_app.db import AuditEvent, LoginFailure, init_db, make_engine, now

# --- forwarded headers: the real server, as `critic annotate` runs it ---------------------------------


@pytest.fixture
def served(monkeypatch, tmp_path, request) -> Iterator[tuple[str, object]]:
    """`server.serve` over a database with alice (annotator) and admin, `behind_proxy` as the test's
    parameter; uvicorn runs with the options serve gives it, in a thread. Yields the URL and an engine."""
    url = f"sqlite:///{tmp_path / 'annotations.db'}"
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        create_user(session, "alice", "annotator", PASSWORD)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def run(app, **options) -> None:
        instance = uvicorn.Server(uvicorn.Config(app, **options))
        thread = threading.Thread(target=instance.run, daemon=True)
        thread.start()
        started.append((instance, thread))

    monkeypatch.setattr(uvicorn, "run", run)
    port = free_port()
    server.serve(url, "127.0.0.1", port, behind_proxy=request.param)
    ((instance, thread),) = started
    try:
        with running(instance, thread):
            yield f"http://127.0.0.1:{port}", engine
    finally:
        engine.dispose()  # once the server has stopped


def login(base: str, name: str, password: str, forwarded: str, local_address: str = "127.0.0.1") -> int:
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=base, transport=transport, timeout=60) as client:
        body = {"name": name, "password": password}
        return client.post("/api/login", json=body, headers={"X-Forwarded-For": forwarded}).status_code


def audited_clients(engine) -> list[str]:
    """The addresses of the login attempts in the audit log, oldest first."""
    query = select(AuditEvent.client).where(col(AuditEvent.action).startswith("login"))
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(AuditEvent.id))))


def failures(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {row.key: row.failures for row in session.exec(select(LoginFailure))}


@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
@pytest.mark.parametrize("served", [False], indirect=True, ids=["direct"])
def test_a_local_client_cannot_pick_its_address_without_a_proxy(served):
    """Without --behind-proxy, X-Forwarded-For from 127.0.0.1 is ignored: rotating it neither spreads
    failed logins over made-up addresses nor gets past the real address's lock, nor reaches the audit."""
    base, engine = served
    for i, spoofed in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.3"]):
        assert login(base, f"nobody{i}", "wrong password", spoofed) == 400
    counted = failures(engine)
    assert counted.get("client:127.0.0.1") == 3, counted
    assert not [key for key in counted if key.startswith("client:10.")], counted
    assert audited_clients(engine) == ["127.0.0.1"] * 3

    with Session(engine) as session:  # the real address is locked
        row = session.get(LoginFailure, "client:127.0.0.1")
        row.locked_until = now() + timedelta(hours=1)
        session.add(row)
        session.commit()
    assert login(base, "alice", PASSWORD, "10.9.9.9") == 429


@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
@pytest.mark.parametrize("served", [True], indirect=True, ids=["behind_proxy"])
def test_behind_a_proxy_only_the_proxy_names_the_client(served):
    """With --behind-proxy, X-Forwarded-For from the proxy's address (127.0.0.1 by default) names the
    client; from any other address it is ignored."""
    base, engine = served
    assert login(base, "alice", PASSWORD, "203.0.113.7") == 200
    assert login(base, "alice", "wrong password", "203.0.113.8", local_address="127.0.0.2") == 400
    assert audited_clients(engine) == ["203.0.113.7", "127.0.0.2"]
    assert "client:127.0.0.2" in failures(engine)


# --- body limit, uploads, files and compression: the app in-process ----------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    """The whole app (API and UI) over a database with admin and alice."""
    folder = tmp_path_factory.mktemp("http")
    engine = make_engine(f"sqlite:///{folder / 'annotations.db'}")
    init_db(engine)
    with Session(engine) as session:
        create_user(session, "admin", "admin", PASSWORD)
        create_user(session, "alice", "annotator", PASSWORD)
    with TestClient(server.create_app(engine, lambda: None)) as test_client:
        yield test_client
    engine.dispose()


def session_cookie(client: TestClient, name: str) -> dict[str, str]:
    """The Cookie header of `name`'s logged-in browser: the token its page hands to the server."""
    token = client.post("/api/login", json={"name": name, "password": PASSWORD}).json()["token"]
    handed = client.post("/api/session-cookie", headers={"Authorization": f"Bearer {token}"})
    client.cookies.clear()  # each request below names its own cookie
    assert handed.status_code == 204, handed.text
    set_cookie = handed.headers["set-cookie"]
    assert set_cookie.startswith(f"critic-session={token};"), set_cookie
    assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower(), set_cookie
    return {"Cookie": f"critic-session={token}"}


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes as a stream: the client sends them chunked, with no Content-Length."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def test_a_chunked_body_over_the_limit_is_refused(client):
    """The limit holds for the bytes sent, not only for what Content-Length announces: a chunked body
    past it is refused (413), on the API and on Gradio's upload route alike."""
    json_type = {"Content-Type": "application/json"}
    refused = client.post("/api/login", content=chunks(2 * MAX_BODY), headers=json_type)
    assert refused.status_code == 413 and refused.json() == {"detail": f"request body over {MAX_BODY} bytes"}
    form = {"Content-Type": "multipart/form-data; boundary=b0undary", **session_cookie(client, "admin")}
    upload = client.post("/gradio_api/upload", content=chunks(5 * MAX_BODY), headers=form)
    assert upload.status_code == 413, upload.text
    small = client.post("/api/login", content=b'{"name": "alice"}', headers=json_type)
    assert small.status_code == 422  # under the limit: read and judged as before


def test_uploads_need_a_logged_in_session(client):
    """Gradio's upload route stores nothing for a client without a live session cookie."""
    file = {"files": ("notes.txt", b"hello")}
    assert client.post("/gradio_api/upload", files=file).status_code == 401
    garbage = {"Cookie": "critic-session=not-a-token"}
    assert client.post("/gradio_api/upload", files=file, headers=garbage).status_code == 401
    stored = client.post("/gradio_api/upload", files=file, headers=session_cookie(client, "alice"))
    assert stored.status_code == 200 and stored.json()[0].endswith("notes.txt"), stored.text
    assert client.post("/api/session-cookie").status_code == 401  # no token, no cookie


def test_downloads_go_to_an_admins_session_only(client):
    """A file Gradio serves (an export, the audit CSV) reaches an admin's session, not an anonymous
    client nor an annotator, nor the admin's browser once it logged out."""
    import gradio.utils

    folder = Path(gradio.utils.get_upload_folder()) / secrets.token_hex(16)
    folder.mkdir(parents=True)
    (folder / "audit-log.csv").write_text("at,actor\n", encoding="utf-8")
    url = f"/gradio_api/file={folder / 'audit-log.csv'}"
    assert client.get(url).status_code == 401
    admin, alice = session_cookie(client, "admin"), session_cookie(client, "alice")
    assert client.get(url, headers=alice).status_code == 403
    served = client.get(url, headers=admin)
    assert served.status_code == 200 and served.text == "at,actor\n"
    token = admin["Cookie"].partition("=")[2]
    assert client.post("/api/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(url, headers=admin).status_code == 401
    dropped = client.delete("/api/session-cookie")
    assert dropped.status_code == 204 and 'critic-session=""' in dropped.headers["set-cookie"]


def test_pages_are_served_compressed(client):
    """The page (Gradio's config inlined: about 2 MB) and the config come gzip-compressed to a client
    that accepts it, the page under 300 KB; a client that does not gets them as they are."""
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
    assert int(page.headers["content-length"]) < 300_000 < len(page.content)
    config = client.get("/config", headers={"Accept-Encoding": "gzip"})
    assert config.headers["content-encoding"] == "gzip"
    plain = client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == page.content


def test_the_page_describes_no_api_and_records_no_runs(client):
    """The UI's event handlers are left out of Gradio's API description (the page carried it inline:
    1.4 MB of its 1.9 MB; the JSON API is /api), and Gradio's run history, which would keep each call's
    inputs in the browser (a login's password among them), is off."""
    page = client.get("/", headers={"Accept-Encoding": "identity"})
    assert len(page.content) < 1_000_000 and '"named_endpoints":{}' in page.text.replace(" ", "")
    assert client.get("/config").json()["run_history"] is False
