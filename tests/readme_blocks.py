"""The fenced code blocks of README.md, with the section each sits in and how it is run.

A block is run as printed unless one of these says otherwise:

- its fence has no language, or `text`: a diagram, a formula or a layout, never a command;
- an HTML comment on the line right before its fence (blank lines between are allowed):
  - `<!-- not run: REASON -->`  documentation only (rare: the reason is printed by the test);
  - `<!-- file: NAME -->`       the block is the content of file NAME, which later blocks use;
  - `<!-- needs: CMD ... -->`   run only where every CMD is on PATH (else skipped, saying which);
  - `<!-- one terminal per line -->`  each line is its own terminal: long-running servers are
    started side by side (and stopped with SIGTERM at the end of the block), the others run
    to completion.

Only fenced blocks (``` or ~~~) count; an indented block (the confidence formula) is prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "read_blocks"]

NOT_COMMANDS = frozenset({"", "text"})
_FENCE = re.compile(r"^(?P<fence>```|~~~)(?P<lang>[\w+-]*)\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*$")
_MARKER = re.compile(r"^<!--\s*(?P<name>[a-z ]+?)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")
MARKERS = frozenset({"not run", "file", "needs", "one terminal per line"})


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and the markers before it."""

    line: int  # 1-based line of the opening fence
    sections: tuple[str, ...]  # the headings it sits under, outermost first
    lang: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def section(self) -> str:
        return self.sections[-1] if self.sections else ""

    @property
    def label(self) -> str:
        return f"{self.section or 'top'} (README.md:{self.line})"

    @property
    def is_command(self) -> bool:
        return self.lang not in NOT_COMMANDS and "file" not in self.markers


def read_blocks(readme: Path) -> list[Block]:
    """Every fenced block of `readme`, in order. An unknown marker is an error: a typo must not
    silently turn a block into something else."""
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    markers: dict[str, str] = {}
    lines = readme.read_text().splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if heading := _HEADING.match(line):
            level = len(heading["level"])
            headings = [h for h in headings if h[0] < level] + [(level, heading["title"])]
            markers = {}
        elif marker := _MARKER.match(line):
            if marker["name"] not in MARKERS:
                raise ValueError(f"README.md:{number}: unknown marker {marker['name']!r}")
            markers[marker["name"]] = marker["value"] or ""
        elif fence := _FENCE.match(line):
            start, body = number, []
            while number < len(lines) and lines[number].strip() != fence["fence"]:
                body.append(lines[number])
                number += 1
            if number == len(lines):
                raise ValueError(f"README.md:{start}: code block never closed")
            number += 1  # the closing fence
            sections = tuple(title for _, title in headings)
            text = "\n".join(body) + "\n"
            blocks.append(Block(start, sections, fence["lang"].lower(), text, markers))
            markers = {}
        elif line.strip():
            markers = {}  # a marker belongs to the fence right after it, not to prose
    return blocks
