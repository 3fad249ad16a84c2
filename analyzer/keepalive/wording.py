"""Words every layer's messages share."""

from __future__ import annotations


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """`number` and the noun it counts, singular for exactly one: "1 keepalive"."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
