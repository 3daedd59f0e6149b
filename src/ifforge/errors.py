"""Errors a user can cause and fix. The entrypoint prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or bad configuration: the message says what to fix."""
