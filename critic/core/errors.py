"""Errors that reach the user as one line on stderr and exit code 2 (never a traceback)."""


class UserError(Exception):
    """Bad input: a missing path, an unreadable file, an option out of range."""
