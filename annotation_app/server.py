"""The annotation server: the JSON API and the Gradio UI in one FastAPI app, served by uvicorn.

The critic is loaded on the first *Check against critic*, not at start: annotators who only compare,
and admins, never wait for a model (nor need torch warmed up).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from critic.annotation_app import api
from critic.annotation_app.db import database_url, init_db, make_engine
from critic.annotation_app.middleware import ASGIApp, RootPath, SecurityHeaders, normalize_root_path

if TYPE_CHECKING:
    from critic.inference.fsbs import Critic


def create_app(
    engine: Engine, critic_factory: Callable[[], Critic], root_path: str = "", behind_proxy: bool = False
) -> ASGIApp:
    """The /api routes, and the Gradio UI at / when critic.annotation_app.ui is installed; under
    `root_path` (e.g. /annotate, as a reverse proxy forwards it) when given, and with the security
    headers on every response (`behind_proxy`: every cookie is Secure, the proxy terminates TLS)."""
    prefix = normalize_root_path(root_path)
    return RootPath(SecurityHeaders(_routes(engine, critic_factory, prefix), behind_proxy), prefix)


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

    # Gradio builds its page's asset and queue URLs from this; without it, a proxy's X-Forwarded-Host
    # makes it drop the prefix.
    return gr.mount_gradio_app(
        app, ui.build_ui(engine, critic_factory), path="/", root_path=prefix or None, **assets()
    )


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
    """Open (creating on first start) the database and serve the app until interrupted. uvicorn trusts
    X-Forwarded-For/-Proto from the addresses in $FORWARDED_ALLOW_IPS (default: 127.0.0.1, a proxy on
    this machine), so logins are throttled per real client and TLS is seen through the proxy."""
    import uvicorn

    engine = make_engine(database_url(db_url))
    init_db(engine)
    app = create_app(engine, lazy_critic(model_dir, reward_dir), root_path, behind_proxy)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)
