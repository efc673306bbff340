"""Where a model's weights come from, and how many CPU threads torch may use.

A model is found, in order:
- with a models_dir, `<models_dir>/<name>` and nothing else: a missing directory is an error,
  never a silent download (`check_models_dir` says which, in one line, before anything starts);
- without one, the default hub id of the model (`DEFAULT_HUB_IDS`), from the Hugging Face cache
  or the hub. `check_hub_weights` makes an unreachable hub fail in seconds instead of after
  transformers' retries: weights already in the cache load offline (HF_HUB_OFFLINE), others
  are one error line naming --models-dir.

Tests and the demo always pass a models_dir built by `alabel models make-tiny` (no hub there).

The embedding length a registry records for a new store is `embedding_dimension(models_dir)`:
the `hidden_size` in `<models_dir>/dinov2/config.json` (the config `Dinov2Model.from_pretrained`
reads; DINOv2's embedding is its pooler output, `hidden_size` long), or 768 for the default
facebook/dinov2-base.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path

from agentic_labeling.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSION",
    "DEFAULT_HUB_IDS",
    "check_hub_weights",
    "check_models_dir",
    "embedding_dimension",
    "limit_torch_threads",
    "resolve_weights",
    "select_device",
]

# The real checkpoints in transformers format, used when no local directory is given.
DEFAULT_HUB_IDS = {
    "florence2": "florence-community/Florence-2-base",
    "sam2": "facebook/sam2.1-hiera-tiny",
    "dinov2": "facebook/dinov2-base",
}

# hidden_size of facebook/dinov2-base, the embedding length of the default DINOv2.
DEFAULT_EMBEDDING_DIMENSION = 768

_HUB_PROBE_TIMEOUT_S = 3.0


def resolve_weights(name: str, models_dir: Path | None) -> str:
    """`<models_dir>/<name>` when a models_dir is given (it must exist), else the hub id."""
    if models_dir is None:
        return DEFAULT_HUB_IDS[name]
    directory = models_dir.expanduser() / name
    if not directory.is_dir():
        raise FailedPrecondition(
            f"--models-dir {models_dir} has no {name}/ directory (weights in transformers"
            " format): `alabel models make-tiny DIR` builds tiny ones",
            reason="MODEL_WEIGHTS_MISSING",
            metadata={"model": name},
        )
    return str(directory)


def _read_config(directory: Path, models_dir: Path) -> dict[str, object]:
    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgument(
            f"--models-dir {models_dir}: {config_file} is missing (not a transformers checkpoint)",
            field="models_dir",
            reason="MODEL_CONFIG_UNREADABLE",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InvalidArgument(
            f"--models-dir {models_dir}: {config_file} cannot be read ({why})",
            field="models_dir",
            reason="MODEL_CONFIG_UNREADABLE",
        ) from None
    except ValueError as error:
        raise InvalidArgument(
            f"--models-dir {models_dir}: {config_file} is not valid JSON ({error})",
            field="models_dir",
            reason="MODEL_CONFIG_UNREADABLE",
        ) from None
    if not isinstance(config, dict):
        raise InvalidArgument(
            f"--models-dir {models_dir}: {config_file} is not a JSON object",
            field="models_dir",
            reason="MODEL_CONFIG_UNREADABLE",
        )
    return config


def check_models_dir(models_dir: Path, names: Iterable[str] = DEFAULT_HUB_IDS) -> None:
    """InvalidArgument (one line, field models_dir) unless every model in `names` that this
    project knows has `<models_dir>/<name>/config.json`, readable and a JSON object."""
    known = [n for n in names if n in DEFAULT_HUB_IDS]
    if not known:
        return  # a repository of other models (tests' echo model): their weights are theirs
    if not models_dir.expanduser().is_dir():
        what = "is not a directory" if models_dir.expanduser().exists() else "does not exist"
        raise InvalidArgument(
            f"--models-dir {models_dir} {what}: give the directory holding florence2/, sam2/"
            " and dinov2/ (`alabel models make-tiny DIR` builds tiny ones), or leave the flag"
            " out to download the real checkpoints",
            field="models_dir",
            reason="MODELS_DIR_MISSING",
        )
    for name in known:
        directory = models_dir.expanduser() / name
        if not directory.is_dir():
            raise InvalidArgument(
                f"--models-dir {models_dir} has no {name}/ directory (weights in transformers"
                " format, as `alabel models make-tiny DIR` writes them)",
                field="models_dir",
                reason="MODEL_WEIGHTS_MISSING",
            )
        _read_config(directory, models_dir)


def embedding_dimension(models_dir: Path | None) -> int:
    """The embedding length of the DINOv2 served from `models_dir` (None: the hub default)."""
    if models_dir is None:
        return DEFAULT_EMBEDDING_DIMENSION
    config = _read_config(Path(resolve_weights("dinov2", models_dir)), models_dir)
    size = config.get("hidden_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise InvalidArgument(
            f"--models-dir {models_dir}: dinov2/config.json has no positive hidden_size"
            f" (got {size!r}); it is not a DINOv2 checkpoint",
            field="models_dir",
            reason="MODEL_CONFIG_UNREADABLE",
        )
    return size


def _hub_reachable(endpoint: str) -> bool:
    parsed = urllib.parse.urlsplit(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), _HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:  # no route, refused, no DNS, timed out
        return False


def _cached(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def check_hub_weights(
    names: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Before loading models by hub id: the environment the loaders need, or one error line.

    Hub reachable: nothing to add. Unreachable: every model must be in the Hugging Face cache,
    which then loads offline (HF_HUB_OFFLINE=1: no retries); otherwise FailedPrecondition
    naming --models-dir, within a few seconds.
    """
    environ = os.environ if environ is None else environ
    wanted = [DEFAULT_HUB_IDS[n] for n in names if n in DEFAULT_HUB_IDS]
    offline = environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    endpoint = environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not wanted or (not offline and _hub_reachable(endpoint)):
        return {}
    missing = [hub_id for hub_id in wanted if not _cached(hub_id)]
    if missing:
        why = "HF_HUB_OFFLINE is set" if offline else f"the model hub ({endpoint}) is unreachable"
        raise FailedPrecondition(
            f"no --models-dir was given and {why}; {', '.join(missing)} not in the Hugging Face"
            " cache: pass --models-dir DIR with florence2/, sam2/ and dinov2/ in transformers"
            " format (`alabel models make-tiny DIR` builds tiny ones)",
            reason="MODEL_HUB_UNREACHABLE",
        )
    return {"HF_HUB_OFFLINE": "1"}


def select_device(requested: str = "") -> str:
    """`requested` when given ("cpu", "cuda", "cuda:1"), else a GPU when there is one."""
    if requested:
        return requested
    import torch  # here: the registry and the CLI read this module without loading torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def limit_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads so several model instances do not oversubscribe the CPU."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
