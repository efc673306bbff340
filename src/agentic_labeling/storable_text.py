"""Which strings the stores can hold: the one check every string passes before it reaches
Postgres (names, display names, attributes, filters, reviewers, ...).

PostgreSQL text cannot contain NUL (U+0000), and a lone surrogate (U+D800..U+DFFF, which
Python strings can carry, e.g. from a JSON escape `"\\ud800"` or an undecodable file name)
has no UTF-8 encoding. Either would fail inside the database driver as an internal error;
here it is an InvalidArgument naming the request field and the character's position.
"""

from __future__ import annotations

from agentic_labeling.errors import InvalidArgument

__all__ = ["check_storable", "unstorable_character"]


def unstorable_character(text: str) -> tuple[int, str] | None:
    """The position and a description of the first character no store can hold, or None."""
    nul = text.find("\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # only a surrogate cannot be encoded
        if nul < 0 or error.start < nul:
            return error.start, f"lone surrogate U+{ord(text[error.start]):04X}"
    return None if nul < 0 else (nul, "NUL character")


def check_storable(text: str, field: str) -> str:
    """`text` unchanged, or InvalidArgument naming `field` (reason UNSTORABLE_CHARACTER)."""
    found = unstorable_character(text)
    if found is not None:
        position, what = found
        raise InvalidArgument(
            f"contains a {what} at position {position}; text fields cannot hold NUL "
            "characters or lone surrogates",
            field=field,
            reason="UNSTORABLE_CHARACTER",
            metadata={"position": str(position)},
        )
    return text
