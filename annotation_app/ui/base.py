"""What every tab of the annotation UI shares: the database, the critic, the login token, and the rule
that a refused action becomes a one-line message in the tab's status line, except a login that no
longer holds (expired, ended by an admin): that one returns the page to the login form (app.py)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.audit import visible
from critic.annotation_app.store import AppError

if TYPE_CHECKING:
    from critic.annotation_app.db import User

# Database work only: never queue users behind each other (the critic check sets its own limit).
QUICK: dict[str, Any] = {"concurrency_limit": None}
AUTOSAVE_S = 2.0  # a draft is saved this long after an edit (and every this long while typing)
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def as_text(text: object) -> str:
    """`text` for a gr.Markdown, shown as typed: every ASCII punctuation mark backslash-escaped (Markdown
    then shows it literally: no link, emphasis, HTML or bare-URL link), controls written out (`visible`).
    For names and other text people typed, which must never become markup: a database from before the
    name rule may hold `[phish](http://evil.example)`."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", visible(str(text)))


def form_is_of(item: dict | None, form_of: float | None) -> bool:
    """Whether the form sent (`form_of`: the id of the item the page shows, held by the page, since a
    gr.State lives on the server) is of the item open now. A save sent before Submit or Skip and run
    after it carries the old id, so it can never land on the item opened in between."""
    return item is not None and form_of is not None and int(form_of) == item["id"]


def open_form(item: dict | None, form_of: float | None, noun: str) -> dict:
    """The open item, when the form sent is of it; otherwise a refusal: the page changed under the click,
    and one item's form must never count for another (`noun`: "sample" or "task")."""
    if item is None:
        raise AppError(f"no {noun} is open")
    if not form_is_of(item, form_of):
        raise AppError(f"the page changed to another {noun} before this click was handled: try again")
    return item


class SessionEnded(AppError):
    """The page's login token no longer gives a user: it expired (the message says so), was logged out
    elsewhere, or an admin disabled the user or changed their role or password. `guard` lets it through
    to the shell, which shows the login form with this message and keeps the page's unsaved work."""


@dataclass
class Context:
    """Handed to each tab: `token` is the login token's BrowserState (localStorage)."""

    engine: Engine
    critic_factory: Callable[[], Any]
    token: gr.BrowserState

    @contextmanager
    def user(self, token: str | None) -> Iterator[tuple[Session, User]]:
        """A database session and the user `token` belongs to (SessionEnded if there is none)."""
        if not token:
            raise SessionEnded("not logged in")
        with Session(self.engine) as session:
            try:
                user = store.user_for_token(session, token)
            except AppError as err:  # every refusal of a token: the session is over
                raise SessionEnded(str(err)) from err
            yield session, user


def guard(status: gr.Markdown) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Turn an AppError of the handler into a message in `status`; every other field keeps its value.
    SessionEnded goes through: the shell turns it into the login form (`AnnotationUI.end_sessions`)."""

    def wrap(handler: Callable[..., dict]) -> Callable[..., dict]:
        @functools.wraps(handler)
        def guarded(*args: Any) -> dict:
            try:
                return handler(*args)
            except SessionEnded:
                raise
            except AppError as err:
                gr.Warning(str(err), duration=5)  # the status line keeps the message
                return {status: f"⚠ {err}"}

        guarded.session_guarded = True  # type: ignore[attr-defined]  # for AnnotationUI.end_sessions
        return guarded

    return wrap
