"""The one error type users see: a one-line message naming the bad value and what is allowed."""


class UsageError(ValueError):
    """Bad input from a user (unknown id, non-positive count, mismatched run directory...).

    The CLI prints ``error: <message>`` on one line and exits with status 2; nothing is written.
    """


def require_positive(name: str, value: int | float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be positive, got {value!r}")


def input_error(err: BaseException) -> str | None:
    """The one-line message for an error caused by bad input, or ``None`` for a bug (which keeps
    its traceback). Bad input is a ``UsageError``, or an ``OSError`` on a named path: the paths
    the CLI touches are the user's (a runs path that is a file, a directory without write
    permission, a missing checkpoint in a run directory, a full disk)."""
    if isinstance(err, UsageError):
        return str(err).replace("\n", " ")  # one line, whatever the message holds
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return None
