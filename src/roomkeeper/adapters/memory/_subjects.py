"""NATS subject matching, as the server does it.

A subject is dot-separated tokens. In a pattern, ``*`` matches exactly one token and
``>`` (only as the last token) matches one or more tokens.
"""

from __future__ import annotations

__all__ = ["subject_matches", "subjects_overlap", "valid_pattern", "valid_subject"]


def valid_subject(subject: str) -> bool:
    """A literal subject: non-empty tokens, no wildcard tokens, no whitespace."""
    return _valid_tokens(subject) and not any(t in ("*", ">") for t in subject.split("."))


def valid_pattern(pattern: str) -> bool:
    """A subscription or stream subject: wildcards are whole tokens, ``>`` only last."""
    if not _valid_tokens(pattern):
        return False
    tokens = pattern.split(".")
    return all(t != ">" for t in tokens[:-1])


def subject_matches(pattern: str, subject: str) -> bool:
    """True when the literal ``subject`` is matched by ``pattern``."""
    want = pattern.split(".")
    have = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def subjects_overlap(a: str, b: str) -> bool:
    """True when some literal subject is matched by both patterns; the server refuses
    two streams whose subjects overlap, so at most one stream captures a subject."""
    left, right = a.split("."), b.split(".")
    for i in range(min(len(left), len(right))):
        x, y = left[i], right[i]
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(left) == len(right)


def _valid_tokens(text: str) -> bool:
    if not text or any(c.isspace() for c in text):
        return False
    return all(text.split("."))
