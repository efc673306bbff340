"""The split algorithm on its own: whole groups, exact group counts, determinism, stratification."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from agentic_labeling.registry.datasets.dataset_splits import (
    SplitGroup,
    assign_splits,
    split_targets,
)
from agentic_labeling.registry.values.dataset_records import SPLITS, Split, SplitRatios

DEFAULT = SplitRatios(0.8, 0.1, 0.1)


def random_groups(rng: random.Random, count: int, classes: int = 5) -> list[SplitGroup]:
    return [
        SplitGroup(
            f"g{i:05d}",
            {c: rng.randint(1, 4) for c in rng.sample(range(classes), rng.randint(1, classes))},
        )
        for i in range(count)
    ]


def random_ratios(rng: random.Random) -> SplitRatios:
    values = [rng.choice([0.0, rng.random()]) for _ in range(3)]
    if not any(values):
        values[0] = 1.0
    total = sum(values)
    return SplitRatios(*(v / total for v in values))


def test_every_group_gets_exactly_one_split() -> None:
    groups = random_groups(random.Random(0), 200)
    assigned = assign_splits(groups, DEFAULT, seed=7)
    assert set(assigned) == {g.key for g in groups}
    assert set(assigned.values()) <= set(SPLITS)


def test_two_groups_with_one_key_are_refused() -> None:
    with pytest.raises(ValueError, match="two groups"):
        assign_splits([SplitGroup("a", {0: 1}), SplitGroup("a", {1: 1})], DEFAULT, seed=0)


def test_same_seed_and_groups_give_the_same_split_whatever_the_input_order() -> None:
    groups = random_groups(random.Random(1), 300)
    first = assign_splits(groups, DEFAULT, seed=42)
    for shuffle_seed in range(5):
        shuffled = list(groups)
        random.Random(shuffle_seed).shuffle(shuffled)
        assert assign_splits(shuffled, DEFAULT, seed=42) == first


def test_another_seed_gives_another_split() -> None:
    groups = random_groups(random.Random(2), 300)
    first = assign_splits(groups, DEFAULT, seed=1)
    second = assign_splits(groups, DEFAULT, seed=2)
    moved = sum(first[key] != second[key] for key in first)
    assert moved >= 20


def test_a_negative_seed_is_not_its_absolute_value() -> None:
    groups = random_groups(random.Random(3), 300)
    assert assign_splits(groups, DEFAULT, seed=-5) != assign_splits(groups, DEFAULT, seed=5)


def test_group_counts_are_within_one_of_ratio_times_n_over_many_random_cases() -> None:
    rng = random.Random(4)
    for _ in range(300):
        groups = random_groups(rng, rng.randint(0, 60), classes=rng.randint(1, 6))
        ratios = random_ratios(rng)
        counts = Counter(
            assign_splits(groups, ratios, seed=rng.randrange(-(2**63), 2**63)).values()
        )
        assert sum(counts.values()) == len(groups)
        for split in SPLITS:
            assert abs(counts[split] - ratios.of(split) * len(groups)) < 1, (ratios, len(groups))
            if ratios.of(split) == 0:
                assert counts[split] == 0


def test_targets_use_the_largest_remainder() -> None:
    assert split_targets(10, DEFAULT) == {Split.TRAIN: 8, Split.VAL: 1, Split.TEST: 1}
    # 5.6, 0.7, 0.7: the two largest fractional parts get the two groups left over.
    assert split_targets(7, DEFAULT) == {Split.TRAIN: 5, Split.VAL: 1, Split.TEST: 1}
    assert split_targets(3, SplitRatios(0.5, 0.5, 0.0)) == {
        Split.TRAIN: 2,
        Split.VAL: 1,
        Split.TEST: 0,
    }
    assert split_targets(0, DEFAULT) == {Split.TRAIN: 0, Split.VAL: 0, Split.TEST: 0}


def test_targets_are_exact_for_ratios_that_floats_round() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; the rational arithmetic gives 29 and 71.
    assert 0.29 * 100 < 29
    assert split_targets(100, SplitRatios(0.29, 0.71, 0.0)) == {
        Split.TRAIN: 29,
        Split.VAL: 71,
        Split.TEST: 0,
    }


def test_a_split_with_ratio_zero_gets_nothing() -> None:
    groups = random_groups(random.Random(5), 101)
    counts = Counter(assign_splits(groups, SplitRatios(0.7, 0.0, 0.3), seed=3).values())
    assert counts[Split.VAL] == 0
    assert counts[Split.TRAIN] + counts[Split.TEST] == 101


def test_all_ratio_on_one_split_puts_everything_there() -> None:
    groups = random_groups(random.Random(6), 50)
    assert set(assign_splits(groups, SplitRatios(0, 0, 1), seed=0).values()) == {Split.TEST}


def test_unusable_ratios_are_refused() -> None:
    with pytest.raises(ValueError, match="ratios"):
        split_targets(10, SplitRatios(0, 0, 0))
    with pytest.raises(ValueError, match="ratios"):
        split_targets(10, SplitRatios(-0.5, 1.5, 0))


def test_groups_without_objects_are_still_placed() -> None:
    groups = [SplitGroup(f"e{i}", {}) for i in range(10)]
    counts = Counter(assign_splits(groups, DEFAULT, seed=0).values())
    assert counts == {Split.TRAIN: 8, Split.VAL: 1, Split.TEST: 1}


def _rare_class_error(assigned: dict[str, Split], groups: list[SplitGroup]) -> float:
    """How far the rare class (1) is from its ideal share per split, summed over splits."""
    rare = Counter(assigned[g.key] for g in groups if 1 in g.class_counts)
    total = sum(rare.values())
    return sum(abs(rare[s] - DEFAULT.of(s) * total) for s in SPLITS)


def _random_split(groups: list[SplitGroup], seed: int) -> dict[str, Split]:
    """The baseline: shuffle and cut at the same group counts."""
    keys = [g.key for g in groups]
    random.Random(seed).shuffle(keys)
    targets = split_targets(len(keys), DEFAULT)
    cut_val = targets[Split.TRAIN]
    cut_test = cut_val + targets[Split.VAL]
    return {
        key: Split.TRAIN if i < cut_val else Split.VAL if i < cut_test else Split.TEST
        for i, key in enumerate(keys)
    }


def test_a_rare_class_is_spread_like_the_ratios_better_than_a_random_split() -> None:
    rng = random.Random(7)
    # 500 groups of a common class; 20 of them also hold one object of a rare class.
    groups = [
        SplitGroup(f"g{i:04d}", {0: rng.randint(1, 5), **({1: 1} if i % 25 == 0 else {})})
        for i in range(500)
    ]
    stratified = [
        _rare_class_error(assign_splits(groups, DEFAULT, seed), groups) for seed in range(20)
    ]
    baseline = [_rare_class_error(_random_split(groups, seed), groups) for seed in range(20)]
    # 20 rare groups at 0.8 / 0.1 / 0.1 is exactly 16 / 2 / 2: stratification hits it.
    assert max(stratified) == 0
    assert sum(baseline) / len(baseline) > 1.5
    # And the common class still follows the ratios (within a few objects of its share).
    assigned = assign_splits(groups, DEFAULT, seed=0)
    common = Counter()
    for group in groups:
        common[assigned[group.key]] += group.class_counts[0]
    total = sum(common.values())
    for split in SPLITS:
        assert abs(common[split] - DEFAULT.of(split) * total) <= 0.02 * total


def test_every_split_gets_each_class_that_has_enough_groups() -> None:
    rng = random.Random(8)
    groups = random_groups(rng, 400, classes=12)
    # Make class 11 appear in only 10 groups: enough for one in val and one in test.
    groups = [
        SplitGroup(g.key, {c: n for c, n in g.class_counts.items() if c != 11}) for g in groups
    ]
    for i in range(10):
        groups[i * 37] = SplitGroup(groups[i * 37].key, {**groups[i * 37].class_counts, 11: 1})
    for seed in range(10):
        assigned = assign_splits(groups, DEFAULT, seed)
        holding = Counter(assigned[g.key] for g in groups if 11 in g.class_counts)
        assert holding == {Split.TRAIN: 8, Split.VAL: 1, Split.TEST: 1}
