"""The annotation server: the JSON API and the Gradio UI in one FastAPI app, served by uvicorn.

The critic is loaded on the first *Check against critic*, not at start: annotators who only compare,
and admins, never wait for a model (nor need torch warmed up).

Responses are gzip-compressed for clients that accept it: the page carries Gradio's whole config (about
2 MB of JSON, a tenth of that compressed). Server-sent events (Gradio's queue) are left as they are.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from critic.annotation_app import api, store
from critic.annotation_app.db import database_url, init_db, make_engine
from critic.annotation_app.middleware import (
    ASGIApp,
    RootPath,
    SecurityHeaders,
    SessionGate,
    normalize_root_path,
)

if TYPE_CHECKING:
    import gradio as gr

    from critic.inference.fsbs import Critic


def create_app(
    engine: Engine, critic_factory: Callable[[], Critic], root_path: str = "", behind_proxy: bool = False
) -> ASGIApp:
    """The /api routes, and the Gradio UI at / when critic.annotation_app.ui is installed; under
    `root_path` (e.g. /annotate, as a reverse proxy forwards it) when given, with the security headers
    on every response, Gradio's file and upload routes behind a login (`SessionGate`), and compressed.

    `behind_proxy`: a TLS-terminating proxy is in front, so every cookie is Secure, and the client
    address and scheme are taken from X-Forwarded-For/-Proto, but only from the proxy's address
    (`forwarded_allow_ips`). Without it those headers are ignored, whoever sends them: a client on this
    machine could otherwise pick the address its failed logins are counted and audited under."""
    prefix = normalize_root_path(root_path)
    routes = SessionGate(_routes(engine, critic_factory, prefix), _role_of(engine))
    app = RootPath(SecurityHeaders(GZipMiddleware(routes, compresslevel=6), behind_proxy), prefix)
    return ProxyHeadersMiddleware(app, trusted_hosts=forwarded_allow_ips()) if behind_proxy else app


def forwarded_allow_ips() -> str:
    """The proxy addresses trusted with X-Forwarded-For/-Proto: $FORWARDED_ALLOW_IPS (uvicorn's name,
    comma-separated addresses or networks), else 127.0.0.1, a proxy on this machine."""
    return os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"


def _role_of(engine: Engine) -> Callable[[str], str | None]:
    """The role of a login token's user, None when it names no live login (for `SessionGate`)."""

    def role_of(token: str) -> str | None:
        with Session(engine) as session:
            return store.role_for_token(session, token)

    return role_of


def _routes(engine: Engine, critic_factory: Callable[[], Critic], prefix: str) -> FastAPI:
    app = FastAPI(title="critic annotate", docs_url="/api/docs", openapi_url="/api/openapi.json")
    api.install(app, engine, critic_factory)
    try:
        from critic.annotation_app import ui
    except ModuleNotFoundError as err:
        if err.name != "critic.annotation_app.ui":
            raise
        return app
    import gradio as gr

    from critic.annotation_app.ui.assets import assets

    blocks = ui.build_ui(engine, critic_factory)
    undocumented(blocks)
    # root_path: Gradio builds its page's asset and queue URLs from this; without it, a proxy's
    # X-Forwarded-Host makes it drop the prefix. No run history: it would keep every call's inputs
    # (a login's password among them) in the browser.
    return gr.mount_gradio_app(app, blocks, path="/", root_path=prefix or None, run_history=False, **assets())


def undocumented(blocks: gr.Blocks) -> None:
    """Leave the UI's event handlers out of Gradio's API description: they serve the app's own page
    (the JSON API is /api), and the page carries that description inline, 1.4 MB of its 1.9 MB. They
    stay callable, as the page calls them; every one checks the caller's login itself."""
    for fn in blocks.fns.values():
        if fn.api_visibility == "public":
            fn.api_visibility = "undocumented"


def lazy_critic(model_dir: Path | None = None, reward_dir: Path | None = None) -> Callable[[], Critic]:
    """A factory that loads the critic once, on first call (the default critic when no dirs are given),
    and names it after its policy directory for the critiques' origin."""
    lock = threading.Lock()
    loaded: list[Critic] = []

    def factory() -> Critic:
        with lock:
            if not loaded:
                from critic.review.reviewer import load_critic
                from critic.review.settings import ReviewSettings, default_critic_dir

                settings = ReviewSettings().updated(model=model_dir, reward_model=reward_dir)
                critic = load_critic(settings)
                default = settings.model == default_critic_dir() / "policy"
                critic.name = "default_critic" if default else settings.model.resolve().name
                loaded.append(critic)
            return loaded[0]

    return factory


def serve(
    db_url: str | None,
    host: str = "127.0.0.1",
    port: int = 7860,
    model_dir: Path | None = None,
    reward_dir: Path | None = None,
    root_path: str = "",
    behind_proxy: bool = False,
) -> None:
    """Open (creating on first start) the database and serve the app until interrupted. uvicorn's own
    handling of X-Forwarded-For/-Proto is off (it trusts 127.0.0.1 by default, with or without a
    proxy): the app honours them itself, only with `behind_proxy` and only from the proxy's address
    (`create_app`), so logins are throttled and audited per real client."""
    import uvicorn

    engine = make_engine(database_url(db_url))
    init_db(engine)
    from critic.datagen.sandbox import isolation

    print(f"Run tests sandbox: {isolation()}", file=sys.stderr, flush=True)  # which isolation, once
    app = create_app(engine, lazy_critic(model_dir, reward_dir), root_path, behind_proxy)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
