"""Values that must agree across processes come from Settings: the pixel limit and batch sizes.

Each config.pbtxt is read as Triton reads it (text format into Triton's ModelConfig) and
handed to `ServedModelConfig` the way Triton's Python backend hands it to model.py (JSON),
with the environment `alabel triton start` builds for the server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from agentic_labeling.models.served_config import (
    MAX_BATCH_SIZE,
    MAX_IMAGE_PIXELS_VARIABLE,
    ServedModelConfig,
)
from agentic_labeling.settings import Settings
from agentic_labeling.triton_server import (
    TritonLaunch,
    default_model_repository,
    repository_models,
    triton_environment,
)

REPOSITORY = default_model_repository()
MODELS = repository_models(REPOSITORY)


def _config(model: str) -> model_config_pb2.ModelConfig:
    text = (REPOSITORY / model / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _served(model: str, environ: dict[str, str]) -> ServedModelConfig:
    """What model.py's `initialize` reads, given this config.pbtxt and environment."""
    config = _config(model)
    config.parameters["weights"].string_value = "/weights"  # not resolved: not under test
    as_json = json_format.MessageToDict(config, preserving_proto_field_name=True)
    args = {"model_config": json.dumps(as_json), "model_instance_kind": "CPU"}
    return ServedModelConfig.from_triton_args(model, args, environ)


def test_the_repository_serves_the_three_models() -> None:
    assert MODELS == ["dinov2", "florence2", "sam2"]


@pytest.mark.parametrize("model", MODELS)
def test_no_config_pbtxt_holds_a_second_copy_of_the_pixel_limit(model: str) -> None:
    text = (REPOSITORY / model / "config.pbtxt").read_text()

    assert "max_image_pixels" not in _config(model).parameters
    assert str(Settings().max_image_pixels) not in text


@pytest.mark.parametrize("model", MODELS)
def test_a_model_without_the_variable_applies_the_settings_default(model: str) -> None:
    assert _served(model, {}).max_image_pixels == Settings().max_image_pixels


@pytest.mark.parametrize("model", MODELS)
def test_a_model_applies_the_pixel_limit_its_launch_was_given(tmp_path: Path, model: str) -> None:
    launch = TritonLaunch(model_repository=REPOSITORY, max_image_pixels=1_234_567)

    environ = triton_environment(launch, 1, base={"PATH": "/usr/bin"})

    assert environ[MAX_IMAGE_PIXELS_VARIABLE] == "1234567"
    assert _served(model, environ).max_image_pixels == 1_234_567


def test_a_launch_without_a_pixel_limit_leaves_the_models_the_default() -> None:
    launch = TritonLaunch(model_repository=REPOSITORY)

    environ = triton_environment(launch, 1, base={MAX_IMAGE_PIXELS_VARIABLE: "5"})

    assert MAX_IMAGE_PIXELS_VARIABLE not in environ  # the caller's ALABEL_* never leaks in
    assert _served("dinov2", environ).max_image_pixels == Settings().max_image_pixels


def test_a_launch_refuses_a_pixel_limit_that_is_not_positive() -> None:
    with pytest.raises(Exception, match="max_image_pixels must be positive"):
        TritonLaunch(model_repository=REPOSITORY, max_image_pixels=0)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_batches_up_to_the_shared_max_batch_size(model: str) -> None:
    config = _config(model)

    assert config.max_batch_size == MAX_BATCH_SIZE
    assert max(config.dynamic_batching.preferred_batch_size) <= config.max_batch_size


def test_the_default_labeling_window_can_fill_every_models_batches() -> None:
    assert Settings().labeling_window >= MAX_BATCH_SIZE


def test_the_compose_deployment_gives_every_server_one_pixel_limit_and_a_window_that_fills() -> (
    None
):
    from test_docker_compose import COMPOSE_FILE, interpolate, settings_of

    services = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))["services"]
    limits = {
        name: settings_of(services[name]).max_image_pixels
        for name in ("triton", "registry", "orchestrator")
    }

    assert len(set(limits.values())) == 1, limits
    assert settings_of(services["orchestrator"]).labeling_window >= MAX_BATCH_SIZE
