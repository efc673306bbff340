"""Pillow's error text, fit to quote in a message to a client.

Pillow puts the file object in some messages ("cannot identify image file <_io.BytesIO object
at 0x7f...>"): a Python repr with a memory address says nothing to a client and differs on
every call. `pil_error_text` drops such a repr and keeps the rest, which does say something
("cannot identify image file", "image file is truncated (3 bytes not processed)").
"""

from __future__ import annotations

import re

__all__ = ["pil_error_text"]

# `<module.Class object at 0x...>`, the default repr of an object.
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def pil_error_text(error: BaseException) -> str:
    """`str(error)` without object reprs; the error's class name when nothing else is left."""
    text = _OBJECT_REPR.sub("", str(error)).strip()
    return text or type(error).__name__
