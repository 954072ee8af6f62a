"""Users, password hashes and session tokens.

Passwords are hashed with scrypt and a per-user salt and compared in constant time; session tokens are
random and stored only as their sha256, so the database alone cannot be used to log in. Users returned
here are detached from their session with their columns loaded: the UI keeps them across requests,
after the session that loaded them is gone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from critic.annotation_app.db import SessionToken, User

ROLES = ("annotator", "admin")
MIN_PASSWORD = 8
MAX_NAME = 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY_HASH = ""  # filled on first use: an unknown name costs a hash too, so timing reveals no names


class AppError(Exception):
    """Bad input or a refused action; str(err) is a one-line message for the user."""


class Forbidden(AppError):
    """The user's role or ownership does not allow this."""


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


def create_user(session: Session, name: str, role: str, password: str) -> User:
    """A new user; AppError for a taken or malformed name, an unknown role or a short password."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME or any(c.isspace() for c in name):
        raise AppError(f"user name must be 1-{MAX_NAME} characters without spaces")
    if role not in ROLES:
        raise AppError(f"unknown role {role!r} (choose from {', '.join(ROLES)})")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AppError(f"password must be at least {MIN_PASSWORD} characters")
    try:
        if session.exec(select(User).where(User.name == name)).first() is not None:
            raise AppError(f"user {name!r} already exists")
        user = User(name=name, role=role, password_hash=hash_password(password), takes_tasks=role != "admin")
        session.add(user)
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
        elif verify_password(password, user.password_hash):
            return _detached(session, user)
        raise AppError("wrong user name or password")
    finally:
        session.rollback()  # end the read transaction: no lock outlives the call


def login(session: Session, name: str, password: str) -> str:
    """A new session token for these credentials."""
    user = authenticate(session, name, password)
    token = secrets.token_urlsafe(32)
    try:
        session.add(SessionToken(token_hash=_token_hash(token), user_id=user.id))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return token


def logout(session: Session, token: str) -> None:
    try:
        found = session.get(SessionToken, _token_hash(token))
        if found is not None:
            session.delete(found)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def user_for_token(session: Session, token: str) -> User:
    """The user a session token belongs to; AppError if it is unknown (never issued, or logged out)."""
    try:
        found = session.get(SessionToken, _token_hash(token)) if isinstance(token, str) and token else None
        user = session.get(User, found.user_id) if found is not None else None
        if user is None:
            raise AppError("not logged in (unknown or expired session)")
        return _detached(session, user)
    finally:
        session.rollback()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
