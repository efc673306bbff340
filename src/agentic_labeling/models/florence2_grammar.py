"""The grammar Florence-2's constrained decoding writes in, as a transformers logits processor.

Decoding is greedy (one beam, no sampling: deterministic) and constrained by a logits
processor that keeps, per generated row, a state machine over token ids:

    <s> ( NAME LOC LOC LOC LOC (LOC LOC LOC LOC)* )* </s>

NAME is the token sequence of one of *that row's* class names (a trie over token ids; the name
is accepted with and without a leading space, the two ways byte-level BPE spells a word), LOC
is `<loc_0>`..`<loc_999>`. A name may be followed by several boxes because that is how
Florence-2 writes several instances of one phrase. The four locations of a box are x1, y1, x2,
y2 and the grammar enforces x1 < x2 and y1 < y2 (a box of zero bins is empty after Florence's
dequantisation and would be dropped anyway). A new name or box is only started when the
remaining token budget can finish it, so no output is ever cut mid-box. With real weights this
guarantees parseable output that names only the requested classes; the model still decides
when to stop (EOS is allowed at every box boundary, once `min_boxes` boxes are written).

For every generated token the processor also records its log-probability under the model's
*raw* distribution (log-softmax of the logits before the grammar masks anything): the
confidence of a box is built from these (see florence2.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

import torch
from transformers import LogitsProcessor

__all__ = ["LOCATION_BINS", "GrammarProcessor", "LabelTrie", "TokenLayout"]

# Florence-2 quantises each axis of the resized image into this many bins.
LOCATION_BINS = 1000


@dataclass(frozen=True)
class TokenLayout:
    """Where a Florence-2 vocabulary keeps its special and location tokens."""

    bos_id: int
    eos_id: int
    pad_id: int
    location_ids: tuple[int, ...]  # location_ids[k] is the id of <loc_k>

    @cached_property
    def location_bin(self) -> dict[int, int]:
        """Token id -> location bin."""
        return {token: index for index, token in enumerate(self.location_ids)}

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenLayout:
        ids = tokenizer.convert_tokens_to_ids([f"<loc_{k}>" for k in range(LOCATION_BINS)])
        unknown = tokenizer.unk_token_id
        if any(token is None or token == unknown for token in ids):
            raise ValueError("the tokenizer has no <loc_0>..<loc_999> tokens: not Florence-2")
        return cls(
            bos_id=int(tokenizer.bos_token_id),
            eos_id=int(tokenizer.eos_token_id),
            pad_id=int(tokenizer.pad_token_id),
            location_ids=tuple(int(token) for token in ids),
        )


@dataclass
class LabelTrie:
    """One row's class names as paths of token ids; a node with a class_id ends a name."""

    children: dict[int, LabelTrie] = field(default_factory=dict)
    class_id: int | None = None
    depth: int = 0  # the longest path below this node, in tokens

    @classmethod
    def build(cls, labels: Mapping[tuple[int, ...], int]) -> LabelTrie:
        root = cls()
        for ids, class_id in labels.items():
            node = root
            node.depth = max(node.depth, len(ids))
            for token in ids:
                node = node.children.setdefault(token, cls())
            node.class_id = class_id
        return root


class _Phase(Enum):
    START = "start"  # nothing yet: <s> comes first, as Florence-2 writes it
    BOUNDARY = "boundary"  # between boxes: a name, another box of the same name, or </s>
    NAME = "name"  # inside a class name
    BOX = "box"  # inside the four locations of a box
    DONE = "done"


@dataclass
class _RowState:
    trie: LabelTrie
    phase: _Phase = _Phase.START
    node: LabelTrie | None = None
    class_id: int | None = None
    bins: list[int] = field(default_factory=list)
    boxes: int = 0

    def advance(self, token: int, layout: TokenLayout) -> None:
        location = layout.location_bin.get(token)
        if self.phase is _Phase.START:
            self.phase = _Phase.BOUNDARY
        elif self.phase is _Phase.DONE or token == layout.eos_id:
            self.phase = _Phase.DONE
        elif location is not None:
            if self.phase is _Phase.NAME:
                assert self.node is not None
                self.class_id = self.node.class_id
            self.bins = [*self.bins, location] if self.phase is _Phase.BOX else [location]
            self.phase = _Phase.BOX
            if len(self.bins) == 4:
                self.boxes += 1
                self.phase = _Phase.BOUNDARY
        else:
            parent = self.node if self.phase is _Phase.NAME else self.trie
            self.node = None if parent is None else parent.children.get(token)
            # A token the grammar did not allow (only NaN logits can pick one): stop the row.
            self.phase = _Phase.DONE if self.node is None else _Phase.NAME


class GrammarProcessor(LogitsProcessor):
    """Masks every token the grammar forbids and records each chosen token's raw log-prob."""

    def __init__(
        self, tries: Sequence[LabelTrie], *, layout: TokenLayout, budget: int, min_boxes: int
    ) -> None:
        self._rows = [_RowState(trie) for trie in tries]
        self._layout = layout
        self._budget = budget
        self._min_boxes = min_boxes
        self._start: int | None = None
        self._previous: torch.Tensor | None = None  # raw log-probs of the last step
        self._chosen: list[torch.Tensor] = []
        self._locations = torch.tensor(layout.location_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._start is None:
            self._start = input_ids.shape[1]
        step = input_ids.shape[1] - self._start
        if step != len(self._chosen) + (self._previous is not None):
            raise RuntimeError("the grammar must see every decoding step, in order")
        if self._previous is not None:
            last = input_ids[:, -1]
            self._chosen.append(self._previous.gather(1, last[:, None])[:, 0])
            for row, token in zip(self._rows, last.tolist(), strict=True):
                row.advance(int(token), self._layout)
        self._previous = torch.log_softmax(scores.float(), dim=-1)
        allowed = torch.zeros(scores.shape, dtype=torch.bool)
        remaining = self._budget - step  # tokens left, this one included
        for index, row in enumerate(self._rows):
            self._allow(allowed[index], row, remaining)
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))

    def _allow(self, allowed: torch.Tensor, row: _RowState, remaining: int) -> None:
        layout, locations = self._layout, self._locations
        if row.phase is _Phase.START:
            allowed[layout.bos_id] = True
        elif row.phase is _Phase.BOUNDARY:
            can_name = remaining >= row.trie.depth + 5  # name, 4 locations, </s>
            can_box = row.class_id is not None and remaining >= 5
            if can_name:
                allowed[list(row.trie.children)] = True
            if can_box:
                allowed[locations[: LOCATION_BINS - 1]] = True
            if row.boxes >= self._min_boxes or not (can_name or can_box):
                allowed[layout.eos_id] = True
        elif row.phase is _Phase.NAME:
            assert row.node is not None
            allowed[list(row.node.children)] = True
            if row.node.class_id is not None:
                allowed[locations[: LOCATION_BINS - 1]] = True
        elif row.phase is _Phase.BOX:
            if len(row.bins) < 2:  # y1: leave room for a larger y2
                allowed[locations[: LOCATION_BINS - 1]] = True
            else:  # x2 > x1, y2 > y1
                allowed[locations[row.bins[len(row.bins) - 2] + 1 :]] = True
        else:
            allowed[[layout.eos_id, layout.pad_id]] = True

    def token_logprobs(self, generated: torch.Tensor) -> list[list[float]]:
        """Raw log-prob of each generated token, per row (call once, after generate)."""
        chosen = list(self._chosen)
        if self._previous is not None and generated.shape[1] > len(chosen):
            last = generated[:, -1:].to(self._previous.device)
            chosen.append(self._previous.gather(1, last)[:, 0])
        if not chosen:
            return [[] for _ in self._rows]
        stacked: list[list[float]] = torch.stack(chosen, dim=1).cpu().tolist()
        return stacked
