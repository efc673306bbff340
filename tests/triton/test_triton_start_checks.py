"""What `start_triton` and `alabel triton start` check before anything starts (issue 12, items
2 and 4): the weights of --models-dir, the model hub when there is none, busy ports; and the log
is appended to, never overwritten."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentic_labeling.cli import cli
from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.models.loading import check_hub_weights, check_models_dir
from agentic_labeling.triton_server import TritonLaunch, default_model_repository, start_triton


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


def _models(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps({"hidden_size": 32}))
    return root


def _triton_start(data_dir: Path, models_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["--data-dir", str(data_dir), "--models-dir", str(models_dir), "triton", "start"],
    )
    return result.exit_code, result.stderr


def test_triton_start_with_a_missing_models_dir_is_one_line_and_starts_nothing(
    tmp_path: Path,
) -> None:
    code, stderr = _triton_start(tmp_path / "data", tmp_path / "nope")
    assert code == 2
    assert stderr.splitlines() == [
        f"error: --models-dir {tmp_path / 'nope'} does not exist: give the directory holding"
        " florence2/, sam2/ and dinov2/ (`alabel models make-tiny DIR` builds tiny ones), or"
        " leave the flag out to download the real checkpoints"
    ]
    assert not (tmp_path / "data" / "run" / "triton.json").exists()


def test_triton_start_with_a_models_dir_missing_a_model_names_the_directory(
    tmp_path: Path,
) -> None:
    models = _models(tmp_path / "models", "florence2", "sam2")
    code, stderr = _triton_start(tmp_path / "data", models)
    assert code == 2
    assert stderr.splitlines() == [
        f"error: --models-dir {models} has no dinov2/ directory (weights in transformers format,"
        " as `alabel models make-tiny DIR` writes them)"
    ]


def test_an_invalid_config_json_is_named_in_one_line(tmp_path: Path) -> None:
    models = _models(tmp_path / "models", "florence2", "sam2", "dinov2")
    (models / "sam2" / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument) as caught:
        check_models_dir(models)
    assert caught.value.message.startswith(
        f"--models-dir {models}: {models / 'sam2' / 'config.json'} is not valid JSON ("
    )
    assert "\n" not in caught.value.message


def test_a_missing_config_json_is_named(tmp_path: Path) -> None:
    models = _models(tmp_path / "models", "florence2", "sam2")
    (models / "dinov2").mkdir()
    with pytest.raises(InvalidArgument) as caught:
        check_models_dir(models)
    assert caught.value.message == (
        f"--models-dir {models}: {models / 'dinov2' / 'config.json'} is missing (not a"
        " transformers checkpoint)"
    )


def test_without_models_dir_an_unreachable_hub_is_one_line_naming_models_dir(
    tmp_path: Path,
) -> None:
    # An endpoint where nothing listens stands for a machine without internet.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    environ = {"HF_ENDPOINT": nowhere, "HF_HOME": str(tmp_path / "hf")}
    os.environ["HF_HOME"] = environ["HF_HOME"]  # the cache the check reads
    try:
        with pytest.raises(FailedPrecondition) as caught:
            check_hub_weights(["florence2", "sam2", "dinov2"], environ)
    finally:
        del os.environ["HF_HOME"]
    assert caught.value.reason == "MODEL_HUB_UNREACHABLE"
    assert caught.value.message.startswith(
        f"no --models-dir was given and the model hub ({nowhere}) is unreachable;"
    )
    assert "pass --models-dir DIR" in caught.value.message


def test_start_refuses_a_port_that_another_server_holds(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FailedPrecondition) as caught:
            start_triton(
                TritonLaunch(
                    model_repository=default_model_repository(),
                    grpc_port=port,
                    http_port=0,
                    metrics_port=0,
                    models_dir=_models(tmp_path / "models", "florence2", "sam2", "dinov2"),
                    log_file=tmp_path / "triton.log",
                )
            )
    assert caught.value.reason == "PORT_IN_USE"
    assert caught.value.message.startswith(f"grpc port {port} on 127.0.0.1 is in use")
    assert not (tmp_path / "triton.log").exists()  # nothing was started


def test_the_log_of_an_earlier_start_is_kept(echo_repository: Path, tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text("the earlier server's last words\n")
    handle = start_triton(
        TritonLaunch(
            model_repository=echo_repository,
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            log_file=log,
            device="cpu",
            ready_timeout_s=120,
        )
    )
    handle.stop(grace_s=10)
    lines = log.read_text().splitlines()
    assert lines[0] == "the earlier server's last words"
    assert "alabel: starting tritonserver" in lines[1]
