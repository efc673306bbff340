"""Florence-2 detection on a tiny random-weight model with the real architecture.

The boxes of random weights mean nothing; these tests check the plumbing: loading, the grammar,
the parsing, batching parity and that a confidence follows the token probabilities.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.florence2 import (
    DECODING_FILE,
    LOCATION_BINS,
    BoxTokens,
    Detection,
    DetectionSettings,
    Florence2Detector,
    TokenLayout,
    parse_box_tokens,
    to_detections,
)
from agentic_labeling.models.florence2_tiny import build_tiny

SETTINGS = DetectionSettings(max_detections=8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("florence2") / "florence2")


@pytest.fixture(scope="module")
def detector(tiny_dir: Path) -> Florence2Detector:
    return Florence2Detector.load(tiny_dir)


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


IMAGES = [_image(48, 80, 1), _image(120, 60, 2), _image(33, 33, 3)]
NAMES = [["car", "dog"], ["person", "traffic light", "cat", "bus"], ["tree"]]


# --- the tiny model ---------------------------------------------------------------------------


def test_tiny_model_is_small_deterministic_and_loads_through_from_pretrained(
    tiny_dir: Path, tmp_path: Path, detector: Florence2Detector
) -> None:
    files = {p.name: p.read_bytes() for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", DECODING_FILE} <= set(files)
    assert sum(len(b) for b in files.values()) < 5_000_000
    again = build_tiny(tmp_path / "again")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == files
    other = build_tiny(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != files["model.safetensors"]
    assert type(detector.model).__name__ == "Florence2ForConditionalGeneration"
    assert detector.min_boxes == 3  # read from the directory's decoding file
    assert len(detector.layout.location_ids) == LOCATION_BINS


def test_detect_is_deterministic(detector: Florence2Detector) -> None:
    first = detector.detect(IMAGES, NAMES, [SETTINGS] * 3)
    assert detector.detect(IMAGES, NAMES, [SETTINGS] * 3) == first
    assert all(found for found in first)


def test_detections_are_boxes_inside_the_image_with_valid_ids_and_confidences(
    detector: Florence2Detector,
) -> None:
    results = detector.detect(IMAGES, NAMES, [SETTINGS] * 3)
    for image, names, found in zip(IMAGES, NAMES, results, strict=True):
        height, width = image.shape[:2]
        assert 0 < len(found) <= SETTINGS.max_detections
        for d in found:
            x, y, w, h = d.box
            assert x >= 0
            assert y >= 0
            assert w > 0
            assert h > 0
            assert x + w <= width + 1e-9
            assert y + h <= height + 1e-9
            assert 0 <= d.class_id < len(names)
            assert 0.0 < d.confidence <= 1.0
        confidences = [d.confidence for d in found]
        assert confidences == sorted(confidences, reverse=True)


def test_batched_detect_equals_each_image_alone(detector: Florence2Detector) -> None:
    settings = [SETTINGS, DetectionSettings(max_detections=5), SETTINGS]
    batched = detector.detect(IMAGES, NAMES, settings)
    for index, image in enumerate(IMAGES):
        (alone,) = detector.detect([image], [NAMES[index]], [settings[index]])
        assert [(d.box, d.class_id) for d in alone] == [(d.box, d.class_id) for d in batched[index]]
        for a, b in zip(alone, batched[index], strict=True):
            assert a.confidence == pytest.approx(b.confidence, rel=1e-4, abs=1e-4)


def test_min_confidence_only_filters_and_max_detections_caps(detector: Florence2Detector) -> None:
    (everything,) = detector.detect(IMAGES[:1], NAMES[:1], [SETTINGS])
    threshold = everything[len(everything) // 2].confidence
    (kept,) = detector.detect(
        IMAGES[:1], NAMES[:1], [DetectionSettings(min_confidence=threshold, max_detections=8)]
    )
    assert kept == [d for d in everything if d.confidence >= threshold]
    (capped,) = detector.detect(IMAGES[:1], NAMES[:1], [DetectionSettings(max_detections=2)])
    assert len(capped) == 2


# --- grammar and chunking -------------------------------------------------------------------


def test_generated_tokens_follow_the_grammar_with_the_prompts_own_names(
    detector: Florence2Detector,
) -> None:
    layout = detector.layout
    tokenizer = detector.processor.tokenizer
    outputs = detector.generate_tokens(IMAGES, NAMES, [SETTINGS] * 3)
    for output in outputs:
        names = [NAMES[output.image_index][j] for j in output.class_ids]
        allowed = {tuple(tokenizer(n, add_special_tokens=False)["input_ids"]) for n in names} | {
            tuple(tokenizer(" " + n, add_special_tokens=False)["input_ids"]) for n in names
        }
        tokens = list(output.token_ids)
        assert tokens[0] == layout.bos_id
        assert tokens[-1] == layout.eos_id
        assert len(output.token_logprobs) == len(tokens)
        body, boxes, name = tokens[1:-1], 0, []
        bins: list[int] = []
        for token in body:
            location = layout.location_bin.get(token)
            if location is None:
                assert not bins, "a name may only start between boxes"
                name.append(token)
                continue
            if name:
                assert tuple(name) in allowed
                name = []
            bins.append(location)
            if len(bins) == 4:
                assert bins[0] < bins[2]
                assert bins[1] < bins[3]
                boxes, bins = boxes + 1, []
        assert not bins, "a box was cut short"
        assert not name, "a name without a box"
        assert boxes >= detector.min_boxes


def test_long_class_lists_are_chunked_and_merged_with_the_callers_class_ids(
    tiny_dir: Path,
) -> None:
    chunked = Florence2Detector.load(tiny_dir, names_per_prompt=3)
    names = ["car", "dog", "person", "cat", "bus", "tree", "bench", "cup"]
    outputs = chunked.generate_tokens([IMAGES[0]], [names], [SETTINGS])
    assert [o.class_ids for o in outputs] == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert outputs[1].prompt == "<CAPTION_TO_PHRASE_GROUNDING>cat. bus. tree."
    (merged,) = chunked.detect([IMAGES[0]], [names], [SETTINGS])
    # Each chunk asked alone writes the same boxes, with ids counted from the chunk's start.
    alone: dict[tuple[tuple[float, ...], int], float] = {}
    for start in (0, 3, 6):
        (found,) = chunked.detect([IMAGES[0]], [names[start : start + 3]], [SETTINGS])
        alone.update({(d.box, d.class_id + start): d.confidence for d in found})
    assert len(merged) == SETTINGS.max_detections
    for d in merged:
        assert alone[(d.box, d.class_id)] == pytest.approx(d.confidence, rel=1e-4)
    assert len({d.class_id // 3 for d in merged}) > 1


def test_only_prompts_with_equal_generation_settings_share_a_generate_call(
    detector: Florence2Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    original = detector.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((kwargs["input_ids"].shape[0], kwargs["max_new_tokens"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(detector.model, "generate", spy)
    mixed_filters = [DetectionSettings(min_confidence=c, max_detections=8) for c in (0, 0.5, 0)]
    detector.detect(IMAGES, NAMES, mixed_filters)
    assert calls == [(3, detector.max_new_tokens(SETTINGS))]
    calls.clear()
    budgets = [SETTINGS, DetectionSettings(max_detections=3), SETTINGS]
    detector.detect(IMAGES, NAMES, budgets)
    assert sorted(calls) == sorted(
        [(2, detector.max_new_tokens(SETTINGS)), (1, detector.max_new_tokens(budgets[1]))]
    )


def test_token_budget_follows_max_detections_within_the_decoder_positions(
    detector: Florence2Detector,
) -> None:
    assert detector.max_new_tokens(DetectionSettings(max_detections=1)) < detector.max_new_tokens(
        DetectionSettings(max_detections=10)
    )
    huge = detector.max_new_tokens(DetectionSettings(max_detections=100_000))
    assert huge == detector.model.config.text_config.max_position_embeddings - 1


def test_without_steering_the_grammar_still_yields_only_parseable_output(tiny_dir: Path) -> None:
    plain = Florence2Detector.load(tiny_dir, min_boxes=0)
    assert plain.min_boxes == 0
    for output in plain.generate_tokens(IMAGES, NAMES, [SETTINGS] * 3):
        body = [t for t in output.token_ids[1:-1] if t in plain.layout.location_bin]
        assert len(body) % 4 == 0


# --- confidence -----------------------------------------------------------------------------


def test_recorded_logprobs_are_the_raw_model_logprobs_of_the_chosen_tokens(
    detector: Florence2Detector,
) -> None:
    (output,) = detector.generate_tokens(IMAGES[:1], NAMES[:1], [SETTINGS])
    inputs = detector.processor(
        text=[output.prompt], images=[Image.fromarray(IMAGES[0])], return_tensors="pt"
    )
    start = detector.model.config.text_config.decoder_start_token_id
    decoder_ids = torch.tensor([[start, *output.token_ids[:-1]]])
    with torch.inference_mode():
        logits = detector.model(**inputs, decoder_input_ids=decoder_ids).logits[0]
    expected = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(output.token_ids)[:, None])
    assert expected[:, 0].tolist() == pytest.approx(list(output.token_logprobs), abs=1e-4)


def test_confidence_drops_when_tokens_the_grammar_forbids_gain_probability(
    detector: Florence2Detector,
) -> None:
    settings = [SETTINGS] * 3
    tokens_before = detector.generate_tokens(IMAGES, NAMES, settings)
    before = detector.detect(IMAGES, NAMES, settings)
    forbidden = detector.processor.tokenizer.mask_token_id  # never allowed by the grammar
    bias = torch.zeros(detector.model.config.text_config.vocab_size)
    bias[forbidden] = 8.0

    def boost(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return output + bias

    handle = detector.model.get_output_embeddings().register_forward_hook(boost)
    try:
        tokens_after = detector.generate_tokens(IMAGES, NAMES, settings)
        after = detector.detect(IMAGES, NAMES, settings)
    finally:
        handle.remove()
    # The model wrote the same tokens (the grammar shields them), each one now less likely...
    for old_tokens, new_tokens in zip(tokens_before, tokens_after, strict=True):
        assert new_tokens.token_ids == old_tokens.token_ids
        for old, new in zip(old_tokens.token_logprobs, new_tokens.token_logprobs, strict=True):
            assert new < old
    # ...so every box scores lower (the cap may now keep a different top few).
    for old_found, new_found in zip(before, after, strict=True):
        by_box = {(d.box, d.class_id): d.confidence for d in new_found}
        common = [d for d in old_found if (d.box, d.class_id) in by_box]
        assert common
        for d in common:
            assert by_box[(d.box, d.class_id)] < d.confidence * 0.5


# --- parsing (hand-made token sequences) ----------------------------------------------------

LAYOUT = TokenLayout(
    bos_id=0, eos_id=2, pad_id=1, location_ids=tuple(range(100, 100 + LOCATION_BINS))
)
LABELS = {(10,): 0, (11, 12): 1, (13,): 1}  # "car" = [10]; "traffic light" = [11, 12] or [13]


def loc(k: int) -> int:
    return 100 + k


def _parse(tokens: list[int], logprobs: list[float] | None = None) -> list[BoxTokens]:
    scores = logprobs if logprobs is not None else [0.0] * len(tokens)
    return parse_box_tokens(tokens, scores, labels=LABELS, layout=LAYOUT)


def test_parse_reads_names_boxes_and_several_boxes_per_name() -> None:
    tokens = [0, 10, loc(1), loc(2), loc(3), loc(4), 11, 12, loc(5), loc(6), loc(7), loc(8)]
    tokens += [loc(9), loc(10), loc(11), loc(12), 2, loc(13)]  # after </s>: ignored
    assert [(b.class_id, b.bins) for b in _parse(tokens)] == [
        (0, (1, 2, 3, 4)),
        (1, (5, 6, 7, 8)),
        (1, (9, 10, 11, 12)),
    ]


def test_parse_confidence_is_name_probability_times_geometric_mean_of_locations() -> None:
    tokens = [0, 11, 12, loc(1), loc(2), loc(3), loc(4), loc(5), loc(6), loc(7), loc(8)]
    logprobs = [-9.0, -0.5, -0.25, -1.0, -2.0, -3.0, -4.0, -0.1, -0.2, -0.3, -0.4]
    first, second = _parse(tokens, logprobs)
    assert first.confidence == pytest.approx(math.exp(-0.75) * math.exp(-10.0 / 4))
    # The second box shares its name's probability.
    assert second.confidence == pytest.approx(math.exp(-0.75) * math.exp(-1.0 / 4))


def test_parse_drops_truncated_boxes_and_boxes_of_unknown_names() -> None:
    assert _parse([10, loc(1), loc(2), loc(3)]) == []  # cut off by the end
    cut = _parse([10, loc(1), loc(2), 13, loc(3), loc(4), loc(5), loc(6)])  # cut by a name
    assert [(b.class_id, b.bins) for b in cut] == [(1, (3, 4, 5, 6))]
    assert _parse([99, loc(1), loc(2), loc(3), loc(4)]) == []  # not a requested name
    assert _parse([loc(1), loc(2), loc(3), loc(4)]) == []  # no name at all
    assert _parse([1, 10, loc(1), loc(2), loc(3), loc(4)]) == []  # padding ends it


def test_parse_refuses_mismatched_logprobs() -> None:
    with pytest.raises(ValueError, match="log-probabilities"):
        parse_box_tokens([10], [], labels=LABELS, layout=LAYOUT)


def test_to_detections_dequantises_like_florence_and_orders_swapped_corners() -> None:
    boxes = [BoxTokens(0, (500, 750, 0, 250), 0.5)]  # x2 < x1 and y2 < y1
    (d,) = to_detections(boxes, width=200, height=100, settings=DetectionSettings())
    assert d.box == pytest.approx((0.1, 25.05, 100.0, 50.0))
    assert d == Detection(d.box, 0, 0.5)
    (full,) = to_detections(
        [BoxTokens(0, (0, 0, 999, 999), 0.5)], width=10, height=10, settings=DetectionSettings()
    )
    assert full.box == pytest.approx((0.005, 0.005, 9.99, 9.99))


def test_to_detections_drops_empty_boxes_and_keeps_the_best_duplicate() -> None:
    boxes = [
        BoxTokens(0, (10, 10, 10, 20), 0.9),  # zero width
        BoxTokens(0, (1, 2, 3, 4), 0.2),
        BoxTokens(0, (3, 4, 1, 2), 0.4),  # the same box, corners swapped
        BoxTokens(1, (1, 2, 3, 4), 0.3),  # the same box, another class: kept
    ]
    found = to_detections(boxes, width=1000, height=1000, settings=DetectionSettings())
    assert [(d.class_id, d.confidence) for d in found] == [(0, 0.4), (1, 0.3)]


def test_to_detections_filters_sorts_and_caps() -> None:
    boxes = [BoxTokens(0, (k, k, k + 5, k + 5), c) for k, c in ((1, 0.1), (2, 0.7), (3, 0.5))]
    found = to_detections(
        boxes, width=100, height=100, settings=DetectionSettings(min_confidence=0.2)
    )
    assert [d.confidence for d in found] == [0.7, 0.5]
    capped = to_detections(
        boxes, width=100, height=100, settings=DetectionSettings(max_detections=1)
    )
    assert [d.confidence for d in capped] == [0.7]


# --- bad input ------------------------------------------------------------------------------

GOOD = (IMAGES[0], ["car"], SETTINGS)


@pytest.mark.parametrize(
    ("image", "names", "settings", "field"),
    [
        (IMAGES[0].astype(np.float32), ["car"], SETTINGS, "images[0]"),
        (IMAGES[0][:, :, 0], ["car"], SETTINGS, "images[0]"),
        (IMAGES[0][:, :, :2], ["car"], SETTINGS, "images[0]"),
        (np.zeros((0, 5, 3), np.uint8), ["car"], SETTINGS, "images[0]"),
        ([[1, 2, 3]], ["car"], SETTINGS, "images[0]"),
        (IMAGES[0], [], SETTINGS, "class_names[0]"),
        (IMAGES[0], "car", SETTINGS, "class_names[0]"),
        (IMAGES[0], ["car", " "], SETTINGS, "class_names[0][1]"),
        (IMAGES[0], ["car", 7], SETTINGS, "class_names[0][1]"),
        (IMAGES[0], ["car", " car"], SETTINGS, "class_names[0][1]"),
        (IMAGES[0], ["car", "x" * 200], SETTINGS, "class_names[0][1]"),
        (IMAGES[0], ["a <loc_5> b"], SETTINGS, "class_names[0][0]"),
        (IMAGES[0], ["car"], DetectionSettings(min_confidence=1.5), "settings[0].min_confidence"),
        (IMAGES[0], ["car"], DetectionSettings(max_detections=0), "settings[0].max_detections"),
    ],
)
def test_bad_input_raises_invalid_argument_naming_the_field(
    detector: Florence2Detector, image: Any, names: Any, settings: Any, field: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        detector.detect([GOOD[0], image], [GOOD[1], names], [GOOD[2], settings])
    assert raised.value.violations[0].field == field.replace("[0]", "[1]", 1)
    with pytest.raises(InvalidArgument) as alone:
        detector.validate(image, names, settings)
    assert alone.value.violations[0].field == field


def test_mismatched_list_lengths_raise_invalid_argument(detector: Florence2Detector) -> None:
    with pytest.raises(InvalidArgument) as names:
        detector.detect(IMAGES, NAMES[:2], [SETTINGS] * 3)
    assert names.value.violations[0].field == "class_names"
    with pytest.raises(InvalidArgument) as settings:
        detector.detect(IMAGES, NAMES, [SETTINGS])
    assert settings.value.violations[0].field == "settings"


def test_no_images_give_no_detections_and_a_valid_request_validates(
    detector: Florence2Detector,
) -> None:
    assert detector.detect([], [], []) == []
    detector.validate(*GOOD)


def test_detector_refuses_nonsense_decoding_options(detector: Florence2Detector) -> None:
    with pytest.raises(ValueError, match="names_per_prompt"):
        Florence2Detector(detector.model, detector.processor, names_per_prompt=0)
