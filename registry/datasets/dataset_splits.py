"""Assigning groups of images to train / val / test: pure, deterministic, stratified by class.

A group is what must stay together: a source (SOURCE grouping: the frames of a video never
cross splits) or one frame (FRAME grouping). Each group comes with its objects' counts per
class id. `assign_splits` returns one split per group key, so no group can be in two splits.

The algorithm:

1. Order. Groups are sorted by key first, so the input order does not matter. Every random
   choice is a hash (BLAKE2b) of the seed and the group key, not a random stream: the same seed
   and the same groups give the same splits on any machine and Python version, and adding a group
   does not reshuffle the others' draws.
2. Group counts. Each split's number of groups is fixed up front by the largest-remainder
   method over ratio x N (exact rational arithmetic): every split gets floor(ratio x N) and the
   remaining groups go to the largest fractional parts (ties: train, val, test). So each split
   holds within one group of ratio x N, the counts add up to N, and a split whose ratio is 0
   gets nothing.
3. Stratified filling (after Sechidis et al., "On the stratification of multi-label data",
   2011). Each split s wants ratio_s x total_c objects of each class c. A group's rarest class
   is the class it holds with the fewest objects overall (ties: lower class id). Groups are
   placed rarest-class-first (then in seeded random order), each into the split with the
   largest remaining want for that class among the splits that still have room; ties go to the
   split with the most room left relative to its group count, then to a seeded draw. Placing a
   group lowers that split's wants by all of the group's objects. Because room is counted in
   groups and sums to N, every group is placed and every split ends at its exact group count.

Stratification is best effort: it balances classes as far as whole groups allow (a class seen in
two groups cannot reach three splits), and group counts always win over class balance.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from agentic_labeling.registry.values.dataset_records import SPLITS, Split, SplitRatios

__all__ = ["SplitGroup", "assign_splits", "split_targets"]


@dataclass(frozen=True)
class SplitGroup:
    """Images that must share a split: `key` identifies it (stable across builds), and
    `class_counts` maps class id to its number of objects in the group."""

    key: str
    class_counts: Mapping[int, int]


def split_targets(group_count: int, ratios: SplitRatios) -> dict[Split, int]:
    """How many of `group_count` groups each split gets (largest remainder over ratio x N).

    The ratios need not be normalised; they must be finite, non-negative and not all zero.
    """
    if group_count < 0:
        raise ValueError(f"group_count must not be negative, got {group_count}")
    values = ratios.as_tuple()
    if not all(math.isfinite(r) and r >= 0 for r in values) or not any(values):
        raise ValueError(f"ratios must be non-negative and not all zero, got {values}")
    exact = [Fraction(r) for r in values]
    total = sum(exact, Fraction(0))
    quotas = [r * group_count / total for r in exact]
    counts = [math.floor(q) for q in quotas]
    remainder = group_count - sum(counts)
    # Every split with a remainder to give has a positive fractional part (they sum to the
    # remainder, each below 1), so a zero ratio (fraction 0) is never chosen here.
    by_fraction = sorted(range(len(SPLITS)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_fraction[:remainder]:
        counts[i] += 1
    return dict(zip(SPLITS, counts, strict=True))


def _draw(seed: int, *parts: str) -> int:
    """A seeded pseudo-random number for `parts`, the same on every machine."""
    text = "\x1f".join((str(seed), *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def assign_splits(groups: Iterable[SplitGroup], ratios: SplitRatios, seed: int) -> dict[str, Split]:
    """The split of every group, by group key (see the module docstring for the algorithm).

    Raises ValueError for two groups with one key or unusable ratios.
    """
    ordered = sorted(groups, key=lambda g: g.key)
    for before, after in itertools.pairwise(ordered):
        if before.key == after.key:
            raise ValueError(f"two groups have the key {before.key!r}")
    targets = split_targets(len(ordered), ratios)
    total_ratio = sum(ratios.as_tuple())
    shares = {s: ratios.of(s) / total_ratio for s in SPLITS}

    totals: dict[int, int] = {}
    for group in ordered:
        for class_id, count in group.class_counts.items():
            if count > 0:
                totals[class_id] = totals.get(class_id, 0) + count
    wanted = {s: {c: shares[s] * n for c, n in totals.items()} for s in SPLITS}

    def rarest(group: SplitGroup) -> int | None:
        held = [c for c, n in group.class_counts.items() if n > 0]
        return min(held, key=lambda c: (totals[c], c)) if held else None

    rarest_of = {group.key: rarest(group) for group in ordered}

    def placing_order(group: SplitGroup) -> tuple[int, int, int, int]:
        cls = rarest_of[group.key]
        if cls is None:  # no objects: placed last, by room only
            return (1, 0, 0, _draw(seed, group.key))
        return (0, totals[cls], cls, _draw(seed, group.key))

    room = dict(targets)
    assigned: dict[str, Split] = {}
    for group in sorted(ordered, key=placing_order):
        cls = rarest_of[group.key]
        scores = {
            s: (wanted[s][cls] if cls is not None else 0.0, room[s] / targets[s])
            for s in SPLITS
            if room[s] > 0
        }
        best_score = max(scores.values())
        tied = [s for s, score in scores.items() if score == best_score]
        split = (
            tied[0] if len(tied) == 1 else max(tied, key=lambda s: _draw(seed, group.key, s.value))
        )
        assigned[group.key] = split
        room[split] -= 1
        for class_id, count in group.class_counts.items():
            if count > 0:
                wanted[split][class_id] -= count
    return assigned
