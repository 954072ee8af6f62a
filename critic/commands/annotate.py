"""`critic annotate`: serve the annotation app, and manage its users from the shell.

Passwords never come from arguments (they would land in shell history and `ps`): a hidden prompt, or
stdin when stdin is not a terminal (`printf '%s\\n' "$PASS" | critic annotate add-user ...`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from critic.core.errors import UserError

app = typer.Typer(
    help="The annotation app: tamper code, rate critiques, export training data.",
    invoke_without_command=True,
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL (default: $CRITIC_DATABASE_URL, else SQLite in the data dir)."),
]


def _engine(db: str | None):
    from critic.annotation_app.db import SchemaError, database_url, init_db, make_engine

    engine = make_engine(database_url(db))
    try:
        init_db(engine)
    except SchemaError as err:
        raise UserError(str(err)) from err
    return engine


@app.callback()
def annotate(
    ctx: typer.Context,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for a team).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    model: Annotated[Path | None, typer.Option(help="Critic policy checkpoint (default: built-in).")] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Critic reward model checkpoint.")] = None,
) -> None:
    """Start the annotation app (creating its database on first start)."""
    if ctx.invoked_subcommand is not None:
        return
    if (model is None) != (reward_model is None):
        raise UserError("--model and --reward-model go together")
    from critic.annotation_app.db import database_url
    from critic.annotation_app.server import serve

    url = database_url(db)
    _engine(url).dispose()  # a schema problem is reported before the server starts
    print(f"critic annotate: http://{host}:{port}/ (database {_safe(url)})", file=sys.stderr)
    serve(url, host, port, model, reward_model)


@app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="annotator or admin.")] = "annotator",
    db: DbOption = None,
) -> None:
    """Create a user; the password comes from a hidden prompt, or from stdin when it is not a terminal."""
    from sqlmodel import Session

    from critic.annotation_app.auth import AppError, create_user

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    engine = _engine(db)
    try:
        with Session(engine) as session:
            user = create_user(session, name, role, password)
    except AppError as err:
        raise UserError(str(err)) from err
    finally:
        engine.dispose()
    print(f"created {user.role} {user.name}", file=sys.stderr)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
