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


def open_database(db: str | None, *, create: bool):
    """An engine on the annotation database (`--db`, else the default), schema ready; a malformed URL,
    a missing database (unless `create`), an unreachable one or a newer schema is a one-line UserError.
    Every command that opens the annotation database goes through here, so they all follow one rule."""
    from sqlalchemy.exc import ArgumentError

    from critic.annotation_app.db import NoDatabase, SchemaError, database_url, open_engine

    url = database_url(db)
    check_url(url, create)
    try:
        return open_engine(url, create)
    except (NoDatabase, SchemaError) as err:
        raise UserError(str(err)) from err
    except (ArgumentError, ImportError) as err:  # a driver this install lacks (mysql://: no MySQLdb)
        raise UserError(f"this install cannot open {_safe(url)}: {err}") from None


URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"


def check_url(url: str, create: bool) -> None:
    """UserError for a URL that is not one, or names a database kind SQLAlchemy does not know; with
    `create`, also for a SQLite file in a folder that does not exist. Only the default location's folder
    (in the user data dir) is ever created: a typo in --db must leave nothing behind."""
    import os

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from critic.annotation_app.db import ENV_URL, user_data_dir

    named = f"${ENV_URL}" if url == os.environ.get(ENV_URL) else "--db"  # where the user can fix it
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"{named}: not a database URL (use {URL_FORMS})") from None
    try:
        parsed.get_dialect()
    except (ArgumentError, ImportError):
        raise UserError(
            f"{named}: unknown kind of database {parsed.drivername!r} (use {URL_FORMS})"
        ) from None
    if not create or parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    folder = Path(parsed.database).expanduser().absolute().parent
    if not folder.is_dir() and folder != user_data_dir() / "critic":
        raise UserError(f"{named}: no folder {folder} for the annotation database: create it first")


def check_port_free(host: str, port: int) -> None:
    """UserError if `host:port` is in use now: one line before anything is created or announced, not
    uvicorn's error after the app has loaded. uvicorn binds the same way a moment later and reports any
    other trouble (a name that does not resolve) itself."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"cannot listen on {host}:{port}: {err.strerror} (another server? choose another --port)"
                ) from None


@app.callback()
def annotate(
    ctx: typer.Context,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for a team).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    model: Annotated[Path | None, typer.Option(help="Critic policy checkpoint (default: built-in).")] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Critic reward model checkpoint.")] = None,
    root_path: Annotated[
        str, typer.Option(help="Public path prefix the reverse proxy forwards unchanged (e.g. /annotate).")
    ] = "",
    behind_proxy: Annotated[
        bool,
        typer.Option(
            help="A TLS-terminating reverse proxy is in front: cookies are Secure, and its X-Forwarded-For/"
            "-Proto are trusted, only from $FORWARDED_ALLOW_IPS (default 127.0.0.1)."
        ),
    ] = False,
) -> None:
    """Start the annotation app (creating its database on first start)."""
    if ctx.invoked_subcommand is not None:
        return
    if (model is None) != (reward_model is None):
        raise UserError("--model and --reward-model go together")
    from critic.annotation_app.db import database_url
    from critic.annotation_app.middleware import normalize_root_path
    from critic.annotation_app.server import serve

    try:
        prefix = normalize_root_path(root_path)
    except ValueError as err:
        raise UserError(f"--root-path: {err}") from err
    url = database_url(db)
    check_port_free(host, port)  # before the database is created or the URL announced
    open_database(url, create=True).dispose()  # a schema problem is reported before the server starts
    if not behind_proxy and not is_loopback(host):
        print(UNENCRYPTED_WARNING, file=sys.stderr)
    print(f"critic annotate: http://{host}:{port}{prefix}/ (database {_safe(url)})", file=sys.stderr)
    serve(url, host, port, model, reward_model, prefix, behind_proxy)


UNENCRYPTED_WARNING = (
    "critic annotate: warning: listening beyond this machine without TLS: passwords and login tokens "
    "cross the network unencrypted; put a TLS proxy in front and pass --behind-proxy "
    '(annotation_app/README.md, "Run it for a team")'
)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is only reachable from this machine."""
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume the network can reach it


@app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="annotator or admin.")] = "annotator",
    db: DbOption = None,
) -> None:
    """Create a user; the password comes from a hidden prompt, or from stdin when it is not a terminal."""
    from sqlmodel import Session

    from critic.annotation_app.auth import AppError, check_name, check_password, check_role, create_user

    try:  # everything that needs no database first: a refused user creates no database
        name = check_name(name)
        check_role(role)
        if sys.stdin.isatty():
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        check_password(password)
    except AppError as err:
        raise UserError(str(err)) from err
    engine = open_database(db, create=True)
    try:
        with Session(engine) as session:
            user = create_user(session, name, role, password)
    except AppError as err:
        raise UserError(str(err)) from err
    finally:
        engine.dispose()
    print(f"created {user.role} {user.name}", file=sys.stderr)


@app.command("audit")
def audit_command(
    out: Annotated[Path, typer.Option(help="CSV file to write the audit log to.")],
    db: DbOption = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Export the audit log (every admin action and login attempt) as CSV, oldest first."""
    import csv
    import io

    from sqlmodel import Session

    from critic.annotation_app.audit import export_csv

    if out.is_dir():
        raise UserError(f"{out}: is a folder; give a file name")
    if out.exists() and not force:
        raise UserError(f"{out}: exists (use --force to overwrite)")
    engine = open_database(db, create=False)
    try:
        with Session(engine) as session:
            text = export_csv(session, None)
    finally:
        engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    rows = sum(1 for _ in csv.reader(io.StringIO(text))) - 1  # a cell may hold a line break
    print(f"{rows} audit events -> {out}", file=sys.stderr)


@app.command("backup")
def backup_command(
    out: Annotated[Path, typer.Option(help="New file to write the copy to (never overwritten).")],
    db: DbOption = None,
) -> None:
    """Copy a SQLite annotation database, consistent while the server runs (PostgreSQL: pg_dump)."""
    from critic.annotation_app.backup import BackupError, backup_sqlite, sqlite_path
    from critic.annotation_app.db import database_url

    url = database_url(db)
    try:
        sqlite_path(url)  # a PostgreSQL URL is pointed at pg_dump before anything connects to it
        open_database(url, create=False).dispose()  # a missing database or a newer schema: one line
        report = backup_sqlite(url, out)
    except BackupError as err:
        raise UserError(str(err)) from err
    rows = sum(report.rows.values())
    print(
        f"backup: {rows} rows in {len(report.rows)} tables -> {report.path} "
        f"({report.bytes} bytes, {report.seconds:.2f} s)",
        file=sys.stderr,
    )


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
