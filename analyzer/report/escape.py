"""Names from outside — file names, interface names read from a configuration, reasons
quoting them — made safe for a terminal, the way ``ls -b`` writes file names.

An escape sequence in a file name (``ESC ] 0 ; … BEL`` retitles the window, ``ESC [ 31 m``
colours what follows) must not reach the terminal, and a byte that is not UTF-8 (kept by
Python as a lone surrogate) must not stop the report: control characters become C escapes
(``\\n``, ``\\a``) or octal (``\\033``), undecodable bytes octal (``\\351``), other
unprintable characters (bidirectional overrides, for one) ``\\uXXXX``.
"""

from __future__ import annotations

import re

_NAMED = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
}
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # os.fsdecode's stand-ins for bytes 0x80-0xFF


def printable(text: str) -> str:
    """`text` with every character a terminal would act on, or could not encode, escaped."""
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif code in _SURROGATE_ESCAPES:
            out.append(f"\\{code - 0xDC00:03o}")
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif code < 0x100:
            out.append(f"\\{code:03o}")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


_LONG_NUMBER = re.compile(r"\d{65,}")


def shortened(text: str) -> str:
    """`text` with every run of more than 64 digits (a 100,000-digit argument quoted in an
    error) cut to its first eight and a count, as ``12345678…(100000 digits)``."""
    return _LONG_NUMBER.sub(lambda match: f"{match[0][:8]}…({len(match[0])} digits)", text)


# In JSON text as json's ASCII encoder writes it: an escaped backslash (kept whole, so the
# "u" after it is not taken for an escape), a surrogate pair (a character beyond U+FFFF),
# or a lone surrogate escape (group 3).
_JSON_SURROGATES = re.compile(
    r"(\\\\)|(\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2})|\\u(d[89a-f][0-9a-f]{2})"
)


def _strict(match: re.Match[str]) -> str:
    lone = match[3]
    if lone is None:
        return match[0]
    code = int(lone, 16)
    if code in _SURROGATE_ESCAPES:
        return f"\\\\{code - 0xDC00:03o}"  # the undecodable byte, as printable() writes it
    return "\\ufffd"


def strict_json(text: str) -> str:
    """JSON text written by json's ASCII encoder, with every lone surrogate made valid.

    A file or interface name holding a byte that is not UTF-8 reaches Python as a lone
    surrogate (U+DC80-U+DCFF), which the encoder writes as ``\\udce9``: Python reads that
    back, but strict parsers (orjson, Go's, serde) refuse the whole document. The byte is
    written as :func:`printable` writes it (``\\351``, the text report's spelling); any
    other lone surrogate as U+FFFD.
    """
    if "\\ud" not in text:
        return text
    return _JSON_SURROGATES.sub(_strict, text)
