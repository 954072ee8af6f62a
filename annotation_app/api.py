"""The JSON API under /api: a thin HTTP skin over `critic.annotation_app.store` (bearer-token auth).

Errors are one line in `detail`: 400 for bad input (AppError), 401 without a valid token (an expired
session says so: "your session expired: log in again"), 403 for a role or ownership violation
(Forbidden), 413 for an oversized body, 422 for a body of the wrong shape, 429 with `Retry-After` (whole
seconds) after too many failed logins.
Bodies are strict (no "5" for 5, no unknown fields), so a malformed submission is refused before the
store sees it and writes nothing.

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at definition
time, and they name aliases (`Db`, `Me`) local to `router`.
"""

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy.engine import Engine
from sqlmodel import Session

from critic.annotation_app import audit, store
from critic.annotation_app.auth import AppError, Forbidden, SessionExpired
from critic.annotation_app.db import User
from critic.annotation_app.middleware import BodyLimit

if TYPE_CHECKING:
    from critic.inference.fsbs import Critic

# Bytes: far above any valid request, the largest of which is a draft (store.MAX_DRAFT characters of JSON).
MAX_BODY = 10 * store.MAX_DRAFT

# Row ids fit PostgreSQL's INTEGER, the narrower backend; a larger one names no row, and reaching the
# database it fails there (SQLite cannot bind one past 2**63), so it is refused (422) like any bad input.
MAX_ID = 2**31 - 1
BodyId = Annotated[int, Field(le=MAX_ID)]
PathId = Annotated[int, PathParam(le=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Body):
    name: str
    password: str


class TamperBody(_Body):
    sample_id: BodyId
    code: str
    bug_lines: list[int]
    description: str


class TestsBody(_Body):
    sample_id: BodyId
    code: str


# The rubric fields are the store's (RatingInput), so the API cannot drift from what it stores.
RatingBody = create_model(
    "RatingBody",
    __base__=_Body,
    critique_id=(BodyId, ...),
    **{name: (kind, ...) for name, kind in get_type_hints(store.RatingInput).items()},
)


class RatingsBody(_Body):
    ratings: list[RatingBody]


class DraftBody(_Body):
    payload: dict[str, Any]


class ImportBody(_Body):
    source: str


class OverlapBody(_Body):
    overlap: int


class UserBody(_Body):
    name: str
    role: str
    password: str


class UserUpdateBody(_Body):
    """What to change about a user; a field left out (or null) stays as it is."""

    role: str | None = None
    disabled: bool | None = None
    takes_tasks: bool | None = None
    password: str | None = None


class TtlBody(_Body):
    hours: float


class HighlightBody(_Body):
    quote: str
    comment: str
    source_index: int | None = None  # the critic's highlight it started from; None: the writer's own


class WriteBody(_Body):
    highlights: list[HighlightBody]
    preamble: str = ""


class WritersBody(_Body):
    writers: int


class SessionLimitsBody(_Body):
    idle_minutes: float
    lifetime_hours: float


class _Unauthorized(Exception):
    pass


def install(app: FastAPI, engine: Engine, critic_factory: "Callable[[], Critic]") -> None:
    """Add the /api routes and the one-line error handlers to `app`."""
    app.include_router(router(engine, critic_factory))

    @app.exception_handler(store.TooManyAttempts)
    def too_many(_request: Request, err: store.TooManyAttempts) -> JSONResponse:
        headers = {"Retry-After": str(err.retry_after)}
        return JSONResponse({"detail": str(err)}, status_code=429, headers=headers)

    @app.exception_handler(SessionExpired)
    def expired(_request: Request, err: SessionExpired) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    def forbidden(_request: Request, err: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=403)

    @app.exception_handler(AppError)
    def bad_input(_request: Request, err: AppError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(_Unauthorized)
    def unauthorized(_request: Request, err: _Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    def malformed(_request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_line(err)}, status_code=422)

    app.add_middleware(BodyLimit, limit=MAX_BODY)  # counts the bytes read, not only Content-Length


def one_line(err: RequestValidationError) -> str:
    """The first validation error as `field.path: message`, plus how many more there are."""
    errors = err.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}".replace("\n", " ")


def router(engine: Engine, critic_factory: "Callable[[], Critic]") -> APIRouter:
    api = APIRouter(prefix="/api")
    check_lock = threading.Lock()  # one critic search at a time: the model is shared

    async def session() -> AsyncIterator[Session]:
        """The request's session, opened and closed on the event loop: opening one does no I/O, and
        neither does closing one whose transactions all ended (every store call ends its own), so
        neither is worth the two thread hops of a sync dependency. One left open is closed (rolled
        back) in a worker thread."""
        s = Session(engine)
        try:
            yield s
        finally:
            if s.in_transaction():
                await run_in_threadpool(s.close)
            else:
                s.close()

    Db = Annotated[Session, Depends(session)]

    def current_user(db: Db, authorization: Annotated[str | None, Header()] = None) -> User:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Unauthorized("log in first (Authorization: Bearer <token>)")
        try:
            return store.user_for_token(db, token.strip())
        except AppError as err:
            raise _Unauthorized(str(err)) from None

    Me = Annotated[User, Depends(current_user)]

    @api.get("/health")
    def health() -> dict:
        return {"ok": True}

    @api.post("/login")
    def login(body: LoginBody, db: Db, request: Request) -> dict:
        """Throttled per account and per client address: the address is the connection's, which
        uvicorn's proxy headers make the real client's behind a trusted local proxy."""
        client = request.client.host if request.client is not None else ""
        token = store.login(db, body.name, body.password, client)
        user = store.user_for_token(db, token)
        return {"token": token, "user": user.name, "role": user.role}

    @api.post("/logout")
    def logout(db: Db, me: Me, authorization: Annotated[str, Header()]) -> dict:
        store.logout(db, authorization.partition(" ")[2].strip())
        return {"ok": True}

    @api.get("/me")
    def whoami(me: Me) -> dict:
        return {"user": me.name, "role": me.role}

    @api.get("/me/progress")
    def my_progress(db: Db, me: Me) -> dict:
        return store.my_progress(db, me)

    @api.get("/tamper/next")
    def next_tamper(db: Db, me: Me) -> dict:
        view = store.next_tamper_sample(db, me)
        return {"sample": asdict(view) if view else None}

    @api.post("/tamper/{sample_id}/skip")
    def skip(sample_id: PathId, db: Db, me: Me) -> dict:
        store.skip_sample(db, me, sample_id)
        return {"ok": True}

    @api.post("/tamper/check")
    def check(body: TamperBody, db: Db, me: Me) -> dict:
        with check_lock:
            result = store.check_sample(
                db, me, critic_factory, body.sample_id, body.code, body.bug_lines, body.description
            )
        return asdict(result)

    @api.post("/tamper/tests")
    def tests(body: TestsBody, db: Db, me: Me) -> dict:
        result = store.run_tests(db, me, body.sample_id, body.code)
        return {**asdict(result), "verified": result.verified}

    @api.post("/tamper/submit")
    def submit_tampering(body: TamperBody, db: Db, me: Me) -> dict:
        """The critic is checked here, on the submitted code: a client cannot bring its own verdict."""
        with check_lock:
            result = store.check_sample(
                db, me, critic_factory, body.sample_id, body.code, body.bug_lines, body.description
            )
        tampering_id = store.submit_tampering(
            db, me, body.sample_id, body.code, body.bug_lines, body.description, result
        )
        return {"tampering_id": tampering_id, "caught": result.caught, "adversarial": result.adversarial}

    @api.get("/compare/next")
    def next_compare(db: Db, me: Me) -> dict:
        task = store.next_compare_task(db, me)
        return {"task": asdict(task) if task else None}

    @api.post("/compare/{tampering_id}")
    def submit_ratings(tampering_id: PathId, body: RatingsBody, db: Db, me: Me) -> dict:
        ratings: dict[int, store.RatingInput] = {}
        for r in body.ratings:
            if r.critique_id in ratings:
                raise AppError(f"critique {r.critique_id} is rated twice")
            ratings[r.critique_id] = store.RatingInput(**r.model_dump(exclude={"critique_id"}))
        store.submit_ratings(db, me, tampering_id, ratings)
        return {"ok": True}

    @api.get("/write/next")
    def next_write(db: Db, me: Me) -> dict:
        task = store.next_write_task(db, me)
        return {"task": asdict(task) if task else None}

    @api.post("/write/{tampering_id}")
    def submit_critique(tampering_id: PathId, body: WriteBody, db: Db, me: Me) -> dict:
        highlights = [h.model_dump() for h in body.highlights]
        return {"critique_id": store.submit_critique(db, me, tampering_id, highlights, body.preamble)}

    @api.post("/write/{tampering_id}/skip")
    def skip_write(tampering_id: PathId, db: Db, me: Me) -> dict:
        store.skip_write_task(db, me, tampering_id)
        return {"ok": True}

    @api.put("/admin/writers")
    def set_writers(body: WritersBody, db: Db, me: Me) -> dict:
        store.set_writers(db, me, body.writers)
        return {"writers": body.writers}

    @api.get("/admin/origins")
    def origins(db: Db, me: Me) -> dict:
        return {"origins": store.origin_report(db, me)}

    @api.get("/drafts/{kind}/{item_id}")
    def get_draft(kind: str, item_id: PathId, db: Db, me: Me) -> dict:
        return {"payload": store.load_draft(db, me, kind, item_id)}

    @api.put("/drafts/{kind}/{item_id}")
    def put_draft(kind: str, item_id: PathId, body: DraftBody, db: Db, me: Me) -> dict:
        store.save_draft(db, me, kind, item_id, body.payload)
        return {"ok": True}

    @api.post("/admin/users")
    def add_user(body: UserBody, db: Db, me: Me) -> dict:
        user = store.add_user(db, me, body.name, body.role, body.password)
        return {"user": user.name, "role": user.role}

    @api.get("/admin/users")
    def list_users(db: Db, me: Me) -> dict:
        return {"users": store.list_users(db, me)}

    @api.patch("/admin/users/{name}")
    def update_user(name: str, body: UserUpdateBody, db: Db, me: Me) -> dict:
        store.update_user(db, me, name, **body.model_dump())
        return {"ok": True}

    @api.put("/admin/session-limits")
    def set_session_limits(body: SessionLimitsBody, db: Db, me: Me) -> dict:
        store.set_session_limits(db, me, body.idle_minutes, body.lifetime_hours)
        return {"idle_minutes": body.idle_minutes, "lifetime_hours": body.lifetime_hours}

    @api.get("/admin/audit")
    def audit_events(db: Db, me: Me, limit: int = 1000) -> dict:
        """The audit log, newest first."""
        return {"events": audit.events(db, me, limit)}

    @api.get("/admin/audit.csv")
    def audit_csv(db: Db, me: Me) -> Response:
        """The whole audit log as a CSV download (this export is in it too)."""
        disposition = 'attachment; filename="critic-audit.csv"'
        return Response(
            audit.export_csv(db, me), media_type="text/csv", headers={"Content-Disposition": disposition}
        )

    @api.put("/admin/assignment-ttl")
    def set_assignment_ttl(body: TtlBody, db: Db, me: Me) -> dict:
        store.set_assignment_ttl(db, me, body.hours)
        return {"hours": body.hours}

    @api.post("/admin/import")
    def import_samples(body: ImportBody, db: Db, me: Me) -> dict:
        return {"added": store.import_samples(db, me, body.source)}

    @api.put("/admin/overlap")
    def set_overlap(body: OverlapBody, db: Db, me: Me) -> dict:
        store.set_overlap(db, me, body.overlap)
        return {"overlap": body.overlap}

    @api.get("/admin/progress")
    def progress(db: Db, me: Me) -> dict:
        return store.progress(db, me)

    @api.get("/admin/agreement")
    def agreement(db: Db, me: Me) -> dict:
        return store.agreement(db, me)

    return api
