"""A tiny random-weight Florence-2 with the real architecture, for tests and the offline demo.

`build_tiny(directory)` saves the model and its processor with `save_pretrained`, so it loads
through `Florence2Detector.load` like a real checkpoint. Random weights often end generation at
once, so it also writes DECODING_FILE (`{"min_boxes": 3}`): the in-process tests and the Triton
model loading the same directory are steered to write boxes the same way (see florence2.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    BartTokenizer,
    CLIPImageProcessor,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
)

from agentic_labeling.models.florence2 import DECODING_FILE
from agentic_labeling.models.florence2_grammar import LOCATION_BINS

__all__ = ["build_tiny"]

_TINY_IMAGE_SIZE = 64
_TINY_MIN_BOXES = 3
# Wider than transformers' 0.02 so the random outputs depend on the image (at 0.02 every image
# gives the same boxes); not much wider, or denormal floats make the CPU crawl.
_TINY_INIT_STD = 0.15


# Text the tiny tokenizer is trained on: Florence-2's task prompts and common class names.
_TINY_CORPUS = (
    "What does the image describe? Describe in detail what is shown in the image. "
    "Describe with a paragraph what is shown in the image. What is the text in the image, "
    "with regions? Locate the objects with category name in the image. Locate the objects in "
    "the image, with their descriptions. Locate the region proposals in the image. Locate the "
    "phrases in the caption: Locate in the image with mask What is the polygon mask of region "
    "What is the region? What does the region describe? What text is in the region?",
    "person. bicycle. car. motorcycle. airplane. bus. train. truck. boat. traffic light. "
    "fire hydrant. stop sign. parking meter. bench. bird. cat. dog. horse. sheep. cow. "
    "elephant. bear. zebra. giraffe. backpack. umbrella. handbag. tie. suitcase. frisbee. "
    "skis. snowboard. sports ball. kite. baseball bat. baseball glove. skateboard. surfboard. "
    "tennis racket. bottle. wine glass. cup. fork. knife. spoon. bowl. banana. apple. "
    "sandwich. orange. broccoli. carrot. hot dog. pizza. donut. cake. chair. couch. "
    "potted plant. bed. dining table. toilet. tv. laptop. mouse. remote. keyboard. "
    "cell phone. microwave. oven. toaster. sink. refrigerator. book. clock. vase. scissors. "
    "teddy bear. hair drier. toothbrush. helmet. forklift. pallet. box. crack. defect. tree.",
)


def _tiny_tokenizer() -> BartTokenizer:
    """A byte-level BPE trained here (any text encodes), with Florence-2's extra tokens."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # BART's ids 0..4, in this order
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_TINY_CORPUS, trainer)
    trained = json.loads(bpe.to_str())["model"]
    tokenizer = BartTokenizer(
        vocab=trained["vocab"],
        merges=[tuple(pair) for pair in trained["merges"]],  # type: ignore[misc,unused-ignore]
        extra_special_tokens={"image_token": "<image>"},
    )
    tokenizer.add_tokens([f"<loc_{k}>" for k in range(LOCATION_BINS)])
    return tokenizer


def build_tiny(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight Florence-2 (real architecture) + processor under `directory`.

    Two vision stages at 64 px (65 image tokens), a one-layer BART of width 32 and a BPE
    vocabulary of a few hundred tokens plus the 1000 location tokens: about 1 MB, loads in
    well under a second through `Florence2Detector.load`. Same seed, same files. Also writes
    DECODING_FILE so that decoding is steered to write boxes (see the module docstring).
    """
    tokenizer = _tiny_tokenizer()
    config = Florence2Config(
        vision_config={
            "depths": [1, 1],
            "patch_size": [7, 3],
            "patch_stride": [4, 2],
            "patch_padding": [3, 1],
            "patch_prenorm": [False, True],
            "embed_dim": [16, 32],
            "num_heads": [1, 2],
            "num_groups": [1, 2],
            "window_size": 4,
            "projection_dim": 32,
            "drop_path_rate": 0.0,
            "max_position_embeddings": 16,
            "initializer_range": _TINY_INIT_STD,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "d_model": 32,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64,
            "max_position_embeddings": 1024,
            "init_std": _TINY_INIT_STD,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
            "forced_eos_token_id": tokenizer.eos_token_id,
        },
        image_token_id=tokenizer.image_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Florence2ForConditionalGeneration(config)
        model.eval()  # type: ignore[no-untyped-call,unused-ignore]
    size = _TINY_IMAGE_SIZE
    with torch.inference_mode():
        features = model.model.get_image_features(torch.zeros(1, 3, size, size)).pooler_output
    image_processor = CLIPImageProcessor(
        size={"height": size, "width": size},
        crop_size={"height": size, "width": size},
        do_center_crop=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    # Florence2Processor reads the number of image tokens from here.
    image_processor.image_seq_length = int(features.shape[1])  # type: ignore[attr-defined,unused-ignore]
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        directory
    )
    (directory / DECODING_FILE).write_text(
        json.dumps(
            {
                "min_boxes": _TINY_MIN_BOXES,
                "why": "random weights end generation at once; steer them to write boxes",
            },
            indent=2,
        )
        + "\n"
    )
    return directory
