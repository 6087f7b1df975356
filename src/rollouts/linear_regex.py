"""Regular expressions from manifests and expressions, matched in linear time.

Patterns written by users (`canary-by-header-pattern`, setHeaderRoute `regex` matches, the expression
language's `matches`) are matched per request or per measurement. Python's `re` backtracks: `^(a+)+$`
against 25 bytes takes seconds and would stall the event loop that serves traffic. RE2 (the engine of Go's
`regexp`, hence of Argo's expressions) runs in time linear in the input and refuses what cannot be done so
(backreferences, lookarounds). Subjects are also bounded in length, so one match has a bounded cost.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

# Longer subjects are cut to this many characters before matching (a header value or a metric string
# longer than this is not something a pattern is meant to read in full).
MAX_SUBJECT_LENGTH = 8192
MAX_PATTERN_LENGTH = 4096

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr


class RegexError(ValueError):
    """A pattern RE2 does not accept; the message says why and what the syntax is."""


class LinearPattern:
    """A compiled RE2 pattern with `search` over bounded subjects."""

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def search(self, subject: str, limit: int = MAX_SUBJECT_LENGTH) -> bool:
        """Whether the pattern matches anywhere in (the first `limit` characters of) subject."""
        return self._compiled.search(subject[:limit]) is not None


@lru_cache(maxsize=512)
def compile_linear(pattern: str) -> LinearPattern:
    """`pattern` compiled with RE2; RegexError when RE2 refuses it or it is too long."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"{reason} (RE2 syntax, as Go's regexp: backreferences and lookarounds are not "
                         "supported)") from None
    return LinearPattern(pattern, compiled)
