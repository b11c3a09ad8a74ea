"""A "did you mean" hint: the closest of the names a key or a choice could take, for error messages.

Closeness is difflib's ratio of matching characters (Ratcliff/Obershelp, ``difflib.SequenceMatcher``),
as Python's own "Did you mean" for a misspelt attribute does; below 0.6 nothing is suggested.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: object, options: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean '<prefix>x'?"`` for the option x closest to ``word``, or ``""`` when
    none is close."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""
