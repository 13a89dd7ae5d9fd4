"""Errors the user can act on. The CLI prints their message (no traceback) and exits with `exit_code`."""


class FmnistError(Exception):
    """A failure with a message meant for the user; exit code 1."""

    exit_code = 1


class DataError(FmnistError):
    """Bad input: missing, truncated, corrupt or mismatched data, model or image files; exit code 2."""

    exit_code = 2


class TooLargeError(DataError):
    """Input over a size limit (an image's pixel count, a decompression bomb); exit code 2, HTTP 413 in the server."""


class UsageError(FmnistError):
    """An invalid option or argument value; exit code 2."""

    exit_code = 2


class WriteError(FmnistError, OSError):
    """A file could not be written: the disk is full or over quota, read-only, or not ours to write; exit code 2.

    Also an OSError, so code that tolerates an unwritable location (the dataset cache) still catches it.
    `problem` is the message without its fix, for callers that know a better one.
    """

    exit_code = 2
    problem = ""
