"""The single error type of the condition language (syntax, limits and evaluation failures)."""

from __future__ import annotations


class ExprError(Exception):
    """A condition could not be parsed or evaluated; ``str()`` is a one-line message."""
