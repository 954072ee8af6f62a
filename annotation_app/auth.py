"""Users, password hashes, logins and session tokens.

Passwords are hashed with scrypt and a per-user salt and compared in constant time; session tokens are
random and stored only as their sha256, so the database alone cannot be used to log in. Users returned
here are detached from their session with their columns loaded: the UI keeps them across requests,
after the session that loaded them is gone.

A session ends when it has been idle longer than the idle limit (setting `session_idle_minutes`,
default 120) or is older than its lifetime (`session_lifetime_hours`, default 24), whichever comes
first; disabling a user, changing their role or resetting their password ends theirs at once
(`end_sessions`). Failed logins are throttled (throttle.py) and every login attempt is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import bindparam, delete, update
from sqlmodel import Session, col, select

from critic.annotation_app import audit, throttle
from critic.annotation_app.db import SessionToken, Setting, User, now
from critic.annotation_app.errors import AppError
from critic.annotation_app.errors import Forbidden as Forbidden  # re-exported: the app's errors live here too
from critic.annotation_app.transactions import reading

ROLES = ("annotator", "admin")
MIN_PASSWORD = 8
MAX_NAME = 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY_HASH = ""  # filled on first use: an unknown name costs a hash too, so timing reveals no names
IDLE_SETTING = "session_idle_minutes"
LIFETIME_SETTING = "session_lifetime_hours"
DEFAULT_IDLE_MINUTES = 120.0
DEFAULT_LIFETIME_HOURS = 24.0
# How often a session's last_seen_at is written: at most once a minute, so the token lookup every
# request makes stays a read. A session may therefore live up to this much past its idle limit.
SEEN_EVERY = timedelta(minutes=1)
NOT_LOGGED_IN = "not logged in (unknown or expired session)"
WRONG_LOGIN = "wrong user name or password"


class SessionExpired(AppError):
    """The session was real but ran past its idle limit or its lifetime: the UI shows the login form
    with this message (and keeps the user's draft)."""

    def __init__(self) -> None:
        super().__init__("your session expired: log in again")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(actual.hex(), digest)


def _detached(session: Session, user: User) -> User:
    session.refresh(user)
    session.expunge(user)
    return user


def check_role(role: object) -> None:
    """AppError unless `role` is one of ROLES."""
    if role not in ROLES:
        raise AppError(f"unknown role {role!r} (choose from {', '.join(ROLES)})")


def check_password(password: object) -> None:
    """AppError unless `password` is text of at least MIN_PASSWORD characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AppError(f"password must be at least {MIN_PASSWORD} characters")


def set_password(user: User, password: str) -> None:
    """Give `user` (a row attached to the caller's session, which commits) a new password, after the
    same checks as a new user's. Callers end the user's sessions too (`end_sessions`): a reset is often
    a lockout of someone who should no longer be logged in."""
    check_password(password)
    user.password_hash = hash_password(password)


def end_sessions(session: Session, user_id: int) -> int:
    """Delete every session token of a user (in the caller's transaction); returns how many there were.
    For a disabled user, a changed role or a reset password: no old login outlives the change."""
    tokens = session.exec(select(SessionToken).where(SessionToken.user_id == user_id)).all()
    for token in tokens:
        session.delete(token)
    return len(tokens)


def create_user(session: Session, name: str, role: str, password: str, *, actor: str = audit.CLI) -> User:
    """A new user; AppError for a taken or malformed name, an unknown role or a short password.
    Admins take no compare or write tasks unless they opt in (`takes_tasks`). Audited as `add_user`
    by `actor` (the admin's name; "cli" for the shell), in the same transaction."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME or any(c.isspace() for c in name):
        raise AppError(f"user name must be 1-{MAX_NAME} characters without spaces")
    check_role(role)
    check_password(password)
    try:
        if session.exec(select(User).where(User.name == name)).first() is not None:
            raise AppError(f"user {name!r} already exists")
        user = User(name=name, role=role, password_hash=hash_password(password), takes_tasks=role != "admin")
        session.add(user)
        audit.record(session, actor, "add_user", name, {"role": role})
        session.commit()
        return _detached(session, user)
    finally:
        session.rollback()  # undo a failed insert, or end the read that reloaded the new user


def authenticate(session: Session, name: str, password: str) -> User:
    """The user with these credentials; AppError (the same message either way) if there is none."""
    global _DUMMY_HASH
    name = name.strip() if isinstance(name, str) else ""  # as create_user stores it
    try:
        user = session.exec(select(User).where(User.name == name)).first()
        if user is None:
            _DUMMY_HASH = _DUMMY_HASH or hash_password("not a password")
            verify_password(password, _DUMMY_HASH)
        elif verify_password(password, user.password_hash) and not user.disabled:
            return _detached(session, user)  # a disabled user hears the same as a wrong password
        raise AppError(WRONG_LOGIN)
    finally:
        session.rollback()  # end the read transaction: no lock outlives the call


@contextmanager
def _unit(session: Session) -> Iterator[None]:
    """One unit of work: commit on success, roll back on any error."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def login(session: Session, name: str, password: str, client: str = "") -> str:
    """A new session token for these credentials, tried from address `client` ("" when unknown).

    Throttled (throttle.py) per account and per client: while either is locked the password is not
    checked and TooManyAttempts says when to try again; the failure that earns a lock answers with it
    too. Otherwise an unknown name, a wrong password and a disabled user all hear WRONG_LOGIN. Each
    attempt is an audit event: `login`, `login_failed` or `login_throttled` (target: the name tried).
    The password is checked outside any transaction: scrypt is slow, and writers must not wait on it."""
    name = name if isinstance(name, str) else ""
    tried = _storable(name.strip()[: throttle.MAX_KEY])
    client = client if isinstance(client, str) else ""
    keys = throttle.keys(tried, client)
    with reading(), _unit(session):
        wait = throttle.locked_for(session, keys)
    if wait:
        _refuse(session, tried, client, wait)
    try:
        if tried != name.strip()[: throttle.MAX_KEY] or _storable(password) != password:
            raise AppError(WRONG_LOGIN)  # text UTF-8 cannot hold: no stored name or password has it
        user = authenticate(session, name, password)
    except AppError:
        with _unit(session):
            wait = throttle.failed(session, keys)
            audit.record(session, "", "login_failed", tried, {"locked_for_s": wait} if wait else None, client)
        if wait:
            raise throttle.TooManyAttempts(wait) from None
        raise
    token = secrets.token_urlsafe(32)
    with _unit(session):
        # A lock that concurrent failures set while this password was being checked still holds.
        wait = throttle.locked_for(session, keys)
        if not wait:
            throttle.succeeded(session, keys)
            session.add(SessionToken(token_hash=_token_hash(token), user_id=user.id))
            audit.record(session, user.name, "login", user.name, None, client)
    if wait:
        _refuse(session, tried, client, wait)
    return token


def _storable(text: object) -> str:
    """`text` with what UTF-8 cannot encode (a lone surrogate, which JSON can carry) as U+FFFD, so a
    garbled login is throttled and audited like any failure instead of failing in the database."""
    if not isinstance(text, str):
        return ""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _refuse(session: Session, tried: str, client: str, wait: int) -> None:
    """Record a login refused by a lock, and raise TooManyAttempts."""
    with _unit(session):
        audit.record(session, "", "login_throttled", tried, {"retry_after_s": wait}, client)
    raise throttle.TooManyAttempts(wait)


def logout(session: Session, token: str) -> None:
    """End this session (an unknown token: nothing to end). Audited as `logout`."""
    with _unit(session):
        found = session.get(SessionToken, _token_hash(token))
        if found is not None:
            user = session.get(User, found.user_id)
            name = user.name if user is not None else ""
            session.delete(found)
            audit.record(session, name, "logout", name)


def parse_session_limits(idle_minutes: str | None, lifetime_hours: str | None) -> tuple[float, float]:
    """(idle minutes, lifetime hours) from the settings' stored text; a missing or unreadable one is
    its default (an edited database must not lock everyone out)."""
    return _setting(idle_minutes, DEFAULT_IDLE_MINUTES), _setting(lifetime_hours, DEFAULT_LIFETIME_HOURS)


def _setting(value: str | None, default: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if math.isfinite(number) and number > 0 else default


def _setting_value(key: str):
    return select(Setting.value).where(Setting.key == key).scalar_subquery()


# Built once: building a query and its cache key costs as much as running it on SQLite. The session
# limits come in the same query.
_USER_BY_TOKEN = (
    select(
        User,
        SessionToken.created_at,
        SessionToken.last_seen_at,
        _setting_value(IDLE_SETTING),
        _setting_value(LIFETIME_SETTING),
    )
    .join(SessionToken, col(SessionToken.user_id) == col(User.id))
    .where(SessionToken.token_hash == bindparam("token_hash"))
    .execution_options(populate_existing=True)
)


def user_for_token(session: Session, token: str) -> User:
    """The user a session token belongs to. AppError if it is unknown (never issued, logged out, or
    ended by an admin's change); SessionExpired, deleting it, if it is idle past the idle limit (give
    or take SEEN_EVERY) or older than the lifetime.

    Every API request starts here, so it is one query in a read-only transaction (`reading()`: on
    SQLite it does not queue behind writers), loading the user's columns afresh. Only once a minute
    per session does it write (`last_seen_at`), in a short transaction of its own."""
    if not isinstance(token, str) or not token:
        raise AppError(NOT_LOGGED_IN)
    token_hash = _token_hash(token)
    try:
        with reading():
            row = session.exec(_USER_BY_TOKEN, params={"token_hash": token_hash}).first()
        if row is None or row[0].disabled:
            raise AppError(NOT_LOGGED_IN)
        user, created_at, last_seen_at, idle_value, lifetime_value = row
        session.expunge(user)
    finally:
        session.rollback()
    idle_minutes, lifetime_hours = parse_session_limits(idle_value, lifetime_value)
    at = now()
    idle = at - last_seen_at
    too_old = at - created_at > timedelta(hours=lifetime_hours)
    if too_old or idle > timedelta(minutes=idle_minutes) + SEEN_EVERY:
        with _unit(session):
            session.exec(delete(SessionToken).where(SessionToken.token_hash == token_hash))
        raise SessionExpired()
    if idle >= SEEN_EVERY:
        with _unit(session):
            session.exec(
                update(SessionToken).where(SessionToken.token_hash == token_hash).values(last_seen_at=at)
            )
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
