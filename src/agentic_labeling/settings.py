"""The one settings object, read once from flags and `ALABEL_*` environment, then passed down.

Precedence: a flag given on the command line, then `ALABEL_<FIELD>` in the environment, then
the default below. No other module reads the environment.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from agentic_labeling.errors import InvalidArgument

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "ALABEL_"
MiB = 1024 * 1024


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("agentic-labeling", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Every knob of the platform. Field `foo_bar` is read from `ALABEL_FOO_BAR` or `--foo-bar`."""

    # Where servers listen. Port 0 asks the OS for a free port (tests do this).
    host: str = field(default="127.0.0.1", metadata={"help": "interface servers bind to"})
    registry_port: int = field(default=50051, metadata={"help": "registry server port"})
    orchestrator_port: int = field(default=50052, metadata={"help": "orchestrator server port"})
    review_port: int = field(default=8765, metadata={"help": "review web app's HTTP port"})
    registry_metrics_port: int = field(
        default=9464,
        metadata={"help": "registry's Prometheus /metrics port (0: any free port, -1: off)"},
    )
    orchestrator_metrics_port: int = field(
        default=9465,
        metadata={"help": "orchestrator's Prometheus /metrics port (0: any free port, -1: off)"},
    )
    # Where clients (the orchestrator, the CLI) reach the servers.
    registry_url: str = field(
        default="127.0.0.1:50051", metadata={"help": "registry gRPC address (host:port)"}
    )
    orchestrator_url: str = field(
        default="127.0.0.1:50052", metadata={"help": "orchestrator gRPC address (host:port)"}
    )
    triton_url: str = field(
        default="127.0.0.1:8001", metadata={"help": "Triton gRPC address (host:port)"}
    )
    triton_shared_memory: bool = field(
        default=False,
        metadata={
            "help": "send images to Triton through system shared memory (/dev/shm) when"
            " triton_url is a loopback address (off, or elsewhere: inside the gRPC messages)"
        },
    )
    # Storage: embedded defaults live under data_dir; external services by DSN / URL.
    data_dir: Path = field(
        default_factory=_default_data_dir,
        metadata={"help": "data directory for embedded Postgres, Qdrant and masks"},
    )
    postgres_dsn: str = field(
        default="", metadata={"help": "external Postgres DSN (empty: embedded Postgres)"}
    )
    qdrant_url: str = field(
        default="", metadata={"help": "external Qdrant URL (empty: embedded Qdrant engine)"}
    )
    vector_quantization: bool = field(
        default=True,
        metadata={
            "help": "int8 scalar quantization of stored embeddings, rescored on the originals"
            " (faster similarity search; off: search the float vectors only)"
        },
    )
    mlflow_uri: str = field(
        default="",
        metadata={
            "help": "MLflow tracking URI for training and evaluation runs (empty: SQLite under"
            " DATA_DIR/mlflow)"
        },
    )
    export_root: Path | None = field(
        default=None,
        metadata={"help": "directory dataset exports are written under (empty: DATA_DIR/exports)"},
    )
    models_dir: Path | None = field(
        default=None, metadata={"help": "directory with model weights in transformers format"}
    )
    # None: not given. The registry records its dimension when its stores are created (from
    # the served DINOv2) and reads it back at every later start; a value given here only
    # overrides that for a new store, and must equal the recorded one otherwise.
    embedding_dimension: int | None = field(
        default=None,
        metadata={
            "help": "length of object embeddings, only to override: a new registry takes the"
            " served DINOv2's (768 for DINOv2 base) and records it; a different value is an error"
        },
    )
    duplicate_iou_threshold: float = field(
        default=0.9,
        metadata={"help": "IoU above which a new object merges into one of its frame and class"},
    )
    min_fragment_area: int = field(
        default=16,
        metadata={
            "help": "YOLO-seg exports drop mask parts smaller than this many pixels (0: keep all)"
        },
    )
    labeling_window: int = field(
        default=16,
        metadata={"help": "images the orchestrator labels at once, across all streams"},
    )
    registration_queue: int = field(
        default=32,
        metadata={
            "help": "images whose registry calls the orchestrator makes at once, across all "
            "streams (beside the labeling window, which counts the model stages only)"
        },
    )
    vector_flush_interval_s: float = field(
        default=0.2,
        metadata={
            "help": "the registry flushes new vectors to disk at most this often; until then "
            "they stay in the outbox and a crash re-applies them (0: flush on every write)"
        },
    )
    # Limits, explicit so a bad client cannot exhaust a server.
    max_message_bytes: int = field(
        default=64 * MiB, metadata={"help": "largest gRPC message sent or received"}
    )
    max_image_pixels: int = field(
        default=40_000_000, metadata={"help": "largest image accepted, in pixels"}
    )
    max_batch_objects: int = field(
        default=10_000, metadata={"help": "most objects in one BatchCreateObjects"}
    )
    max_concurrent_rpcs: int = field(
        default=256, metadata={"help": "RPCs a server handles at once before refusing more"}
    )
    shutdown_grace_s: float = field(
        default=10.0, metadata={"help": "seconds in-flight RPCs get to finish on SIGTERM"}
    )
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    log_format: str = field(default="json", metadata={"help": "json (one object a line) or text"})

    def __post_init__(self) -> None:
        _check_settings(self)

    @property
    def exports_directory(self) -> Path:
        """Where ExportDataset writes: export_root, or DATA_DIR/exports by default."""
        return self.export_root if self.export_root is not None else self.data_dir / "exports"

    @property
    def student_repository(self) -> Path:
        """DATA_DIR/triton-models: the Triton model repository ExportRun writes students into by
        default, served by `alabel up` and `alabel triton start` beside the project's own."""
        return self.data_dir / "triton-models"

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("json", "text")


def _check_settings(s: Settings) -> None:
    problems: list[tuple[str, str]] = []
    for name in ("registry_port", "orchestrator_port", "review_port"):
        port = getattr(s, name)
        if not 0 <= port <= 65535:
            problems.append((name, f"must be between 0 and 65535, got {port}"))
    for name in ("registry_metrics_port", "orchestrator_metrics_port"):
        port = getattr(s, name)
        if not -1 <= port <= 65535:
            problems.append((name, f"must be -1 (off) or between 0 and 65535, got {port}"))
    for name in ("max_message_bytes", "max_image_pixels", "max_batch_objects"):
        if getattr(s, name) <= 0:
            problems.append((name, "must be positive"))
    if s.embedding_dimension is not None and s.embedding_dimension <= 0:
        problems.append(("embedding_dimension", "must be positive (or left out)"))
    if not 0.0 < s.duplicate_iou_threshold <= 1.0:
        problems.append(("duplicate_iou_threshold", "must be in (0, 1]"))
    if s.registration_queue <= 0:
        problems.append(("registration_queue", "must be positive"))
    if s.vector_flush_interval_s < 0:
        problems.append(("vector_flush_interval_s", "must not be negative"))
    if s.max_concurrent_rpcs <= 0:
        problems.append(("max_concurrent_rpcs", "must be positive"))
    if s.shutdown_grace_s < 0:
        problems.append(("shutdown_grace_s", "must not be negative"))
    if s.log_level.upper() not in _LOG_LEVELS:
        problems.append(("log_level", f"must be one of {', '.join(_LOG_LEVELS)}"))
    if s.log_format not in _LOG_FORMATS:
        problems.append(("log_format", f"must be one of {', '.join(_LOG_FORMATS)}"))
    if problems:
        name, why = problems[0]
        raise InvalidArgument(f"setting {name} {why}", field=name, reason="BAD_SETTING")


def _field_type(f: dataclasses.Field[object]) -> type:
    """The concrete type to parse a string into (`Path | None` -> Path)."""
    hints = typing.get_type_hints(Settings)
    hint = hints[f.name]
    if isinstance(hint, types.UnionType):
        concrete = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = concrete[0]
    return typing.cast(type, hint)


def _optional(name: str) -> bool:
    hint = typing.get_type_hints(Settings)[name]
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _parse(name: str, kind: type, raw: object) -> object:
    if not isinstance(raw, str):
        return raw  # already typed (a click flag)
    text = raw.strip()
    if not text and _optional(name):
        return None  # an empty variable means "not given" (how None travels to child servers)
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return lowered in ("1", "true", "yes", "on")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is Path:
            return Path(text).expanduser() if text else None
    except ValueError:
        raise InvalidArgument(
            f"setting {name} expects {kind.__name__}, got {raw!r}",
            field=name,
            reason="BAD_SETTING",
        ) from None
    return text


def load_settings(
    flags: Mapping[str, object | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: flags (None means not given) over `ALABEL_*` over defaults.

    Unknown flag names are a programming error (KeyError); unknown `ALABEL_*` variables are
    ignored, because the environment is shared with other programs and versions.
    """
    known = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, object] = {}
    for name, f in known.items():
        env_value = (environ or {}).get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name] = _parse(name, _field_type(f), env_value)
    for name, value in (flags or {}).items():
        if name not in known:
            raise KeyError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _parse(name, _field_type(known[name]), value)
    return Settings(**values)  # type: ignore[arg-type]
