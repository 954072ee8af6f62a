"""Errors that reach the user as one line on stderr and exit code 2 (never a traceback)."""


class UserError(Exception):
    """Bad input: a missing path, an unreadable file, an option out of range."""


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the file.

    Defined here, not beside the loader, so the CLI can catch it without importing torch."""
