"""The one error type users see: a one-line message naming the bad value and what is allowed."""


class UsageError(ValueError):
    """Bad input from a user (unknown id, non-positive count, mismatched run directory...).

    The CLI prints ``error: <message>`` on one line and exits with status 2; nothing is written.
    """


def require_positive(name: str, value: int | float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be positive, got {value!r}")
