"""Rules for the class names a labelling request asks for, shared by the CLI and the servers.

Light on purpose (no numpy, PIL or gRPC): `alabel label` checks `--classes` with these rules
before it opens a channel, and the orchestrator checks AutoLabel and Detect requests with the
same ones, so both refuse the same names for the same reason.

Special tokens. Florence-2 reads the class names inside its prompt, whose vocabulary has tokens
written in angle brackets: task prompts (`<OD>`, `<CAPTION_TO_PHRASE_GROUNDING>`), location
bins (`<loc_0>`..`<loc_999>`), region tags (`<od>`, `</od>`, `<poly>`, ...) and BART's own
(`<s>`, `</s>`, `<pad>`). A class name holding one would steer the model or fail inside it after
the image was stored, so any `<word>` or `</word>` in a name is refused up front.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_CLASS_NAMES",
    "looks_quoted",
    "special_token_in",
]

# At most this many class names in one request.
MAX_CLASS_NAMES = 256

_SPECIAL_TOKEN = re.compile(r"</?[A-Za-z_][A-Za-z0-9_]*>")
_QUOTES = "\"'`"


def special_token_in(name: str) -> str | None:
    """The first `<token>` or `</token>` in `name`, or None."""
    found = _SPECIAL_TOKEN.search(name)
    return found.group(0) if found else None


def looks_quoted(name: str) -> bool:
    """Whether `name` starts or ends with a bracket or a quote: a piece of a JSON list or a
    quoted string (`["person"`, `"car"]`) split at its commas, not a class name."""
    stripped = name.strip()
    return bool(stripped) and (stripped[0] in "[]" + _QUOTES or stripped[-1] in "[]" + _QUOTES)
