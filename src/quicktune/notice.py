"""Notices: things a user should know that are not errors (e.g. images skipped with
--skip-unreadable). Library code raises them as a `Notice` warning, so API users can filter or
record them like any warning; the CLI prints each as one `note: ...` line."""

from __future__ import annotations

import warnings


class Notice(UserWarning):
    """Something the user should know; not an error."""


def notice(message: str, stacklevel: int = 2) -> None:
    """Emit `message` as a Notice (attributed to the caller's caller with the default stacklevel)."""
    warnings.warn(message, Notice, stacklevel=stacklevel + 1)


__all__ = ["Notice", "notice"]
