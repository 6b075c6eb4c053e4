"""The one error `suggest` raises for bad input."""

from __future__ import annotations


class SuggestError(ValueError):
    """Bad input to `suggest` (models, surrogate, options, a work dir of another search): one line."""
