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
import re
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
DISABLED = "this account is disabled: ask an admin to enable it"
FIRST_ADMIN = "critic annotate add-user NAME --role admin"
NO_USERS = f"no users yet: create the first admin on the server with `{FIRST_ADMIN}`"
# A user name: ASCII letters and digits, `.`, `_` and `-`, starting with a letter or digit. Names are
# shown on pages, in the audit log and its CSV: nothing in this set is markup or a control character,
# and no letter of another script can pass for an ASCII one.
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
NAME_RULE = (
    f"user name must be 1-{MAX_NAME} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
)


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


def check_name(name: object) -> str:
    """`name` without surrounding space, or AppError unless it is in the documented set (NAME_PATTERN).
    The message does not repeat the name: it may be markup or control characters."""
    name = name.strip() if isinstance(name, str) else ""
    if not NAME_PATTERN.fullmatch(name):
        raise AppError(NAME_RULE)
    return name


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
    name = check_name(name)
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


class AccountDisabled(AppError):
    """The right password for a disabled user. Only the right password hears it, so a guesser learns
    nothing about which accounts exist or are disabled."""

    def __init__(self) -> None:
        super().__init__(DISABLED)


def has_users(session: Session) -> bool:
    """Whether anyone can log in yet: an empty database shows how to create the first admin."""
    try:
        return session.exec(select(User.id).limit(1)).first() is not None
    finally:
        session.rollback()


def authenticate(session: Session, name: str, password: str) -> User:
    """The user with these credentials. AppError if there is none: WRONG_LOGIN whatever was wrong (in
    an empty database, NO_USERS, which says how to make the first admin); AccountDisabled for a
    disabled user's right password."""
    global _DUMMY_HASH
    name = name.strip() if isinstance(name, str) else ""  # as create_user stores it
    try:
        user = session.exec(select(User).where(User.name == name)).first()
        if user is None:
            _DUMMY_HASH = _DUMMY_HASH or hash_password("not a password")
            verify_password(password, _DUMMY_HASH)
            raise AppError(WRONG_LOGIN if has_users(session) else NO_USERS)
        if not verify_password(password, user.password_hash):
            raise AppError(WRONG_LOGIN)
        if user.disabled:
            raise AccountDisabled()
        return _detached(session, user)
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
    too. Otherwise an unknown name and a wrong password hear WRONG_LOGIN (NO_USERS while there are no
    users), and a disabled user's right password AccountDisabled, which counts as a failure too. Each
    attempt is an audit event: `login`, `login_failed` (detail `disabled` for a disabled user) or
    `login_throttled` (target: the name tried).
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
    except AppError as err:
        with _unit(session):
            wait = throttle.failed(session, keys)
            detail = {"locked_for_s": wait} if wait else {}
            if isinstance(err, AccountDisabled):
                detail["disabled"] = True
            audit.record(session, "", "login_failed", tried, detail or None, client)
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
    """`text` with what UTF-8 cannot encode (a lone surrogate, which JSON can carry) and NUL (which
    PostgreSQL's text cannot hold) as U+FFFD, so a garbled login is throttled and audited like any
    failure instead of failing in the database. No stored name holds either (`check_name`)."""
    if not isinstance(text, str):
        return ""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace("\x00", "\ufffd")


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


def role_for_token(session: Session, token: str | None) -> str | None:
    """The role of the user a token belongs to, None when it names no live login (unknown, ended,
    expired, or its user disabled): for callers that only ask whether a login holds."""
    try:
        return user_for_token(session, token).role if token else None
    except AppError:
        return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
