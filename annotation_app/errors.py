"""The app's user-facing errors, in a module of their own so that every module can raise them
(auth, audit, throttle, store) without importing the others. `auth` re-exports both."""

from __future__ import annotations


class AppError(Exception):
    """Bad input or a refused action; str(err) is a one-line message for the user."""


class Forbidden(AppError):
    """The user's role or ownership does not allow this."""
