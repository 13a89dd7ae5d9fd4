"""Errors the user can act on. The CLI prints their message (no traceback) and exits with `exit_code`."""


class FmnistError(Exception):
    """A failure with a message meant for the user; exit code 1."""

    exit_code = 1


class DataError(FmnistError):
    """Bad input: missing, truncated, corrupt or mismatched data, model or image files; exit code 2."""

    exit_code = 2


class UsageError(FmnistError):
    """An invalid option or argument value; exit code 2."""

    exit_code = 2
