"""Counts in messages, tables and figures: "1 seed", "3 seeds", never "1 seeds"."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun, singular for exactly one; `nouns` where adding "s" is wrong."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
