"""Florence-2 text-prompted detection: images + class names -> boxes with a confidence each.

Task prompt. Every request is asked as `<CAPTION_TO_PHRASE_GROUNDING>` with the class names
joined into a caption ("car. person. traffic light."). Phrase grounding is the Florence-2 task
trained to find *several* phrases of one text in one pass and to answer in exactly the shape we
want, `phrase<loc><loc><loc><loc>phrase<loc>...`; `<OPEN_VOCABULARY_DETECTION>` was trained
with one referring expression per prompt, so asking it for N classes takes N decodes (or gets
one merged phrase back). Long class lists are cut into prompts of at most `NAMES_PER_PROMPT`
names (the grounding quality drops with very long captions and the encoder has 1024
positions, 577 of them taken by the image); the boxes of all chunks are merged with class ids
indexing the caller's full list.

Grammar. Decoding is greedy and constrained by a logits processor (florence2_grammar.py) so
that every row writes only `<s> ( NAME LOC LOC LOC LOC (LOC LOC LOC LOC)* )* </s>` with NAME one
of that row's class names and x1 < x2, y1 < y2 in every box: with real weights the output always
parses and names only the requested classes; the model still decides when to stop.

`min_boxes` (per prompt) forbids EOS until that many boxes are written. It is 0 for real
checkpoints. A random tiny model often ends generation at once, so `florence2_tiny.build_tiny`
writes `alabel_decoding.json` (`{"min_boxes": 3}`) next to its weights and `load` reads it: the
in-process tests and the Triton model loading the same directory decode the same way.

Confidence. For every generated token the grammar's processor records its log-probability under the
model's *raw* distribution (log-softmax of the logits before the grammar masks anything), not
the renormalised constrained one: a token the grammar forced but the model did not want (a box
where the model wanted to stop, a class it did not see) keeps its low probability. A box's
confidence is

    confidence = P(name) * (p(x1) * p(y1) * p(x2) * p(y2)) ** (1/4)

where P(name) is the product of the probabilities of the name's tokens (the probability that
the model names this class at that point, EOS and every other token competing) and the second
factor is the geometric mean of the four location tokens' probabilities (how sure the model is
of the place, on the scale of one token). A box written right after another box of the same
name shares that name's P(name). Limits: it is not a calibrated probability of correctness
(never compare it across models, and pick thresholds on labelled data); location
probabilities spread over neighbouring bins, so even a good box rarely scores near 1; it is
conditional on the greedy path (a box's confidence depends on the boxes written before it);
and with random tiny weights it is meaningless except for following the token probabilities.

Boxes. Location bins are over the resized square image; like Florence-2's post-processor a
bin k maps to (k + 0.5) / 1000 * size of the ORIGINAL image, per axis. Boxes are returned as
x, y, width, height in pixels, clipped to the image; empty boxes are dropped, identical boxes
of the same class keep their best confidence, then `min_confidence` filters, the rest are
sorted by confidence (highest first) and cut at `max_detections`.

Batching. One `generate` call per group of prompts whose generation settings are equal (the
token budget, derived from `max_detections`); `min_confidence` only filters afterwards.
Prompts are right-padded (BART's learned positions make left padding change the outputs) and
the decoder prompt is the same single start token for every row, so a batched result equals
the single-image one up to float rounding.

A detector is not safe to call from several threads at once (the tokenizer is shared); use one
per Triton model instance. Logits are never kept per step: memory grows with the batch, not
with the number of generated tokens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import torch
from PIL import Image
from transformers import (
    Florence2ForConditionalGeneration,
    Florence2Processor,
    LogitsProcessorList,
)

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.florence2_grammar import (
    LOCATION_BINS,
    GrammarProcessor,
    LabelTrie,
    TokenLayout,
)
from agentic_labeling.models.inputs import check_rgb_image

__all__ = [
    "DECODING_FILE",
    "LOCATION_BINS",
    "MAX_NAME_TOKENS",
    "NAMES_PER_PROMPT",
    "TASK_PROMPT",
    "BoxTokens",
    "Detection",
    "DetectionSettings",
    "Florence2Detector",
    "PromptOutput",
    "TokenLayout",
    "parse_box_tokens",
    "to_detections",
]

TASK_PROMPT = "<CAPTION_TO_PHRASE_GROUNDING>"
# Class names per prompt: grounding degrades on long captions, and the encoder's 1024
# positions hold the 577 image tokens too.
NAMES_PER_PROMPT = 10
# Longest class name, in tokens (about 60 characters of English).
MAX_NAME_TOKENS = 16
# Decoding defaults a model directory may carry (the tiny models do; real checkpoints do not).
DECODING_FILE = "alabel_decoding.json"

_CAPTION_SEPARATOR = ". "
# Token budget per requested detection: 4 locations plus a name of a few tokens.
_TOKENS_PER_DETECTION = 8


@dataclass(frozen=True)
class DetectionSettings:
    """Per-image knobs. `max_detections` changes generation; `min_confidence` only filters."""

    min_confidence: float = 0.0
    max_detections: int = 100


@dataclass(frozen=True)
class Detection:
    """One box: x, y, width, height in pixels of the original image; class_id indexes that
    image's class_names; confidence in (0, 1] as defined in the module docstring."""

    box: tuple[float, float, float, float]
    class_id: int
    confidence: float


@dataclass(frozen=True)
class BoxTokens:
    """A box as generated: class id, location bins (x1, y1, x2, y2 as written) and confidence."""

    class_id: int
    bins: tuple[int, int, int, int]
    confidence: float


@dataclass(frozen=True)
class PromptOutput:
    """What the model wrote for one prompt (one chunk of one image's class names).

    `token_ids` starts after the decoder start token and ends with `</s>` (if the model got
    there); `token_logprobs` are the raw log-probabilities of those tokens (module docstring).
    """

    image_index: int
    prompt: str  # the text handed to the processor: task token + caption
    class_ids: tuple[int, ...]  # the class ids (into the image's class_names) of this prompt
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]


def parse_box_tokens(
    token_ids: Sequence[int],
    token_logprobs: Sequence[float],
    *,
    labels: Mapping[tuple[int, ...], int],
    layout: TokenLayout,
) -> list[BoxTokens]:
    """Boxes from generated token ids and their raw log-probabilities.

    `labels` maps a name's token ids to its class id. A leading `<s>` is skipped, `</s>` or
    padding ends the sequence. Every run of four location tokens after a known name is a box;
    a box cut short (by the end or by a name) and boxes after an unknown name are dropped.
    Confidence: see the module docstring.
    """
    if len(token_ids) != len(token_logprobs):
        raise ValueError(f"{len(token_ids)} tokens but {len(token_logprobs)} log-probabilities")
    boxes: list[BoxTokens] = []
    name: list[int] = []
    name_logprob = 0.0
    class_id: int | None = None
    class_logprob = 0.0
    bins: list[int] = []
    bins_logprob = 0.0
    for position, (token, logprob) in enumerate(zip(token_ids, token_logprobs, strict=True)):
        if position == 0 and token == layout.bos_id:
            continue
        if token in (layout.eos_id, layout.pad_id):
            break
        location = layout.location_bin.get(token)
        if location is None:
            bins, bins_logprob = [], 0.0  # a name cuts an unfinished box: dropped
            name.append(token)
            name_logprob += logprob
            continue
        if name:
            class_id, class_logprob = labels.get(tuple(name)), name_logprob
            name, name_logprob = [], 0.0
        bins.append(location)
        bins_logprob += logprob
        if len(bins) == 4:
            if class_id is not None:
                confidence = min(1.0, math.exp(class_logprob + bins_logprob / 4))
                boxes.append(BoxTokens(class_id, (bins[0], bins[1], bins[2], bins[3]), confidence))
            bins, bins_logprob = [], 0.0
    return boxes


def to_detections(
    boxes: Sequence[BoxTokens], *, width: int, height: int, settings: DetectionSettings
) -> list[Detection]:
    """Pixel boxes of a `width` x `height` image, de-duplicated, filtered, sorted and capped."""
    best: dict[tuple[int, int, int, int, int], float] = {}
    for box in boxes:
        x1, y1, x2, y2 = box.bins
        key = (box.class_id, min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        best[key] = max(best.get(key, 0.0), box.confidence)
    found: list[Detection] = []
    for (class_id, x1, y1, x2, y2), confidence in best.items():
        if confidence < settings.min_confidence:
            continue
        left, right = (_dequantize(x, width) for x in (x1, x2))
        top, bottom = (_dequantize(y, height) for y in (y1, y2))
        if right <= left or bottom <= top:
            continue
        found.append(Detection((left, top, right - left, bottom - top), class_id, confidence))
    found.sort(key=lambda d: (-d.confidence, d.class_id, d.box))
    return found[: settings.max_detections]


def _dequantize(location: int, size: int) -> float:
    return min(max((location + 0.5) / LOCATION_BINS * size, 0.0), float(size))


class Florence2Detector:
    """Florence-2 phrase grounding with constrained decoding and a confidence per box."""

    def __init__(
        self,
        model: Florence2ForConditionalGeneration,
        processor: Florence2Processor,
        *,
        min_boxes: int = 0,
        names_per_prompt: int = NAMES_PER_PROMPT,
    ) -> None:
        if min_boxes < 0 or names_per_prompt < 1:
            raise ValueError("min_boxes must be >= 0 and names_per_prompt >= 1")
        model.eval()  # type: ignore[no-untyped-call,unused-ignore]
        self.model = model
        self.processor = processor
        self.min_boxes = min_boxes
        self.names_per_prompt = names_per_prompt
        tokenizer = processor.tokenizer
        self.layout = TokenLayout.from_tokenizer(tokenizer)
        self._forbidden_in_names = set(self.layout.location_ids) | {
            int(token) for token in tokenizer.all_special_ids
        }
        parameter = next(model.parameters())
        self.device = parameter.device
        self.dtype = parameter.dtype
        self._max_positions = int(model.config.get_text_config().max_position_embeddings)

    @classmethod
    def load(
        cls,
        weights: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        min_boxes: int | None = None,
        names_per_prompt: int = NAMES_PER_PROMPT,
    ) -> Florence2Detector:
        """Load a transformers-format Florence-2 (a directory or a hub id).

        dtype None means float32. min_boxes None means the directory's DECODING_FILE value,
        else 0 (see the module docstring).
        """
        source = str(weights)
        model = Florence2ForConditionalGeneration.from_pretrained(
            source, dtype=dtype or torch.float32
        )
        processor = Florence2Processor.from_pretrained(source)
        model.to(device)  # type: ignore[arg-type,unused-ignore]
        if min_boxes is None:
            defaults = Path(source) / DECODING_FILE
            min_boxes = 0
            if defaults.is_file():
                min_boxes = int(json.loads(defaults.read_text())["min_boxes"])
        return cls(model, processor, min_boxes=min_boxes, names_per_prompt=names_per_prompt)

    def max_new_tokens(self, settings: DetectionSettings) -> int:
        """The token budget of one prompt: what decides which prompts may share a generate."""
        wanted = 2 + settings.max_detections * _TOKENS_PER_DETECTION  # + <s> and </s>
        return min(wanted, self._max_positions - 1)

    def validate(
        self, image: npt.NDArray[Any], class_names: Sequence[str], settings: DetectionSettings
    ) -> None:
        """Check one request alone (as `detect` does), raising InvalidArgument naming the field.

        Field names are relative to the request: `images[0]`, `class_names[0][j]`, `settings[0]`.
        """
        check_rgb_image(image, "images[0]")
        self._labels(class_names, "class_names[0]")
        _check_settings(settings, "settings[0]")

    def detect(
        self,
        images: Sequence[npt.NDArray[Any]],
        class_names: Sequence[Sequence[str]],
        settings: Sequence[DetectionSettings],
    ) -> list[list[Detection]]:
        """Boxes per image, for that image's class names; see the module docstring."""
        found: list[list[BoxTokens]] = [[] for _ in images]
        for prompt, output in self._run(images, class_names, settings):
            found[prompt.image_index].extend(
                parse_box_tokens(
                    output.token_ids,
                    output.token_logprobs,
                    labels=prompt.labels,
                    layout=self.layout,
                )
            )
        return [
            to_detections(boxes, width=image.shape[1], height=image.shape[0], settings=wanted)
            for boxes, image, wanted in zip(found, images, settings, strict=True)
        ]

    def generate_tokens(
        self,
        images: Sequence[npt.NDArray[Any]],
        class_names: Sequence[Sequence[str]],
        settings: Sequence[DetectionSettings],
    ) -> list[PromptOutput]:
        """What the model wrote for each prompt, before parsing (same arguments as `detect`)."""
        return [output for _, output in self._run(images, class_names, settings)]

    def _run(
        self,
        images: Sequence[npt.NDArray[Any]],
        class_names: Sequence[Sequence[str]],
        settings: Sequence[DetectionSettings],
    ) -> list[tuple[_Prompt, PromptOutput]]:
        if len(class_names) != len(images):
            raise InvalidArgument(
                f"got {len(images)} images and {len(class_names)} class lists; need one per image",
                field="class_names",
            )
        if len(settings) != len(images):
            raise InvalidArgument(
                f"got {len(images)} images and {len(settings)} settings; need one per image",
                field="settings",
            )
        prompts: list[_Prompt] = []
        for index, (image, names, wanted) in enumerate(
            zip(images, class_names, settings, strict=True)
        ):
            check_rgb_image(image, f"images[{index}]")
            labels = self._labels(names, f"class_names[{index}]")
            _check_settings(wanted, f"settings[{index}]")
            budget = self.max_new_tokens(wanted)
            for start in range(0, len(names), self.names_per_prompt):
                chunk = range(start, min(start + self.names_per_prompt, len(names)))
                caption = _CAPTION_SEPARATOR.join(names[j].strip() for j in chunk) + "."
                prompts.append(
                    _Prompt(
                        image_index=index,
                        text=TASK_PROMPT + caption,
                        class_ids=tuple(chunk),
                        labels={ids: j for ids, j in labels.items() if j in chunk},
                        budget=budget,
                    )
                )
        groups: dict[int, list[_Prompt]] = {}
        for prompt in prompts:
            groups.setdefault(prompt.budget, []).append(prompt)
        results: list[tuple[_Prompt, PromptOutput]] = []
        for budget, group in groups.items():
            outputs = self._generate(images, group, budget)
            results.extend(zip(group, outputs, strict=True))
        return results

    def _labels(self, names: Sequence[str], field: str) -> dict[tuple[int, ...], int]:
        """Token ids of each name (bare and after a space) -> class id; validates the names."""
        if isinstance(names, str) or len(names) == 0:
            raise InvalidArgument("need a non-empty list of class names", field=field)
        seen: dict[str, int] = {}
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name.strip():
                raise InvalidArgument(
                    "a class name must be a non-empty string", field=f"{field}[{j}]"
                )
            if name.strip() in seen:
                raise InvalidArgument(
                    f"class name {name.strip()!r} repeats {field}[{seen[name.strip()]}]",
                    field=f"{field}[{j}]",
                )
            seen[name.strip()] = j
        stripped = list(seen)
        spellings = self.processor.tokenizer(
            stripped + [" " + name for name in stripped], add_special_tokens=False
        )["input_ids"]
        labels: dict[tuple[int, ...], int] = {}
        for position, ids in enumerate(spellings):
            j = position % len(stripped)
            if len(ids) > MAX_NAME_TOKENS:
                raise InvalidArgument(
                    f"class name is longer than {MAX_NAME_TOKENS} tokens", field=f"{field}[{j}]"
                )
            if self._forbidden_in_names.intersection(ids):
                raise InvalidArgument(
                    "class name contains a special or location token", field=f"{field}[{j}]"
                )
            labels.setdefault(tuple(int(token) for token in ids), j)
        return labels

    def _generate(
        self, images: Sequence[npt.NDArray[Any]], prompts: Sequence[_Prompt], budget: int
    ) -> list[PromptOutput]:
        """One generate call for prompts that share a token budget."""
        inputs = self.processor(
            text=[prompt.text for prompt in prompts],
            images=[Image.fromarray(images[prompt.image_index]) for prompt in prompts],
            return_tensors="pt",
            padding="longest",
            padding_side="right",
        )
        grammar = GrammarProcessor(
            [LabelTrie.build(prompt.labels) for prompt in prompts],
            layout=self.layout,
            budget=budget,
            min_boxes=self.min_boxes,
        )
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
                pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
                logits_processor=LogitsProcessorList([grammar]),
                max_new_tokens=budget,
                **_PLAIN_GREEDY,
            )
        generated = sequences[:, 1:]  # drop the decoder start token
        logprobs = grammar.token_logprobs(generated)
        outputs: list[PromptOutput] = []
        for prompt, tokens, scores in zip(prompts, generated.tolist(), logprobs, strict=True):
            length = tokens.index(self.layout.eos_id) + 1 if self.layout.eos_id in tokens else None
            outputs.append(
                PromptOutput(
                    image_index=prompt.image_index,
                    prompt=prompt.text,
                    class_ids=prompt.class_ids,
                    token_ids=tuple(tokens[:length]),
                    token_logprobs=tuple(scores[:length]),
                )
            )
        return outputs


# Greedy decoding and nothing else: every default logits processor a checkpoint's
# generation_config could switch on is switched off, so the grammar sees the raw logits.
_PLAIN_GREEDY: dict[str, Any] = {
    "do_sample": False,
    "num_beams": 1,
    "early_stopping": False,
    "num_return_sequences": 1,
    "min_length": 0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "guidance_scale": None,
    "exponential_decay_length_penalty": None,
    "remove_invalid_values": False,
    "renormalize_logits": False,
    "return_dict_in_generate": False,
}


@dataclass(frozen=True)
class _Prompt:
    image_index: int
    text: str
    class_ids: tuple[int, ...]
    labels: dict[tuple[int, ...], int]  # name token ids -> class id in the caller's list
    budget: int


def _check_settings(settings: DetectionSettings, field: str) -> None:
    if not 0.0 <= settings.min_confidence <= 1.0:
        raise InvalidArgument(
            "min_confidence must be within [0, 1]", field=f"{field}.min_confidence"
        )
    if settings.max_detections < 1:
        raise InvalidArgument("max_detections must be at least 1", field=f"{field}.max_detections")
