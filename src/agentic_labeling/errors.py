"""Domain errors, raised where the fact is known.

Each class names what went wrong in the user's terms and declares, once, the gRPC status code
it travels as (`grpc_code`, by name, so this module stays free of grpc). Everything else derives
from that declaration, after python-api-core's `exceptions.py`: the server's mapping
(`servers/error_status.py`), and the clients' reverse mapping through `error_class_for_code`
(`rpc_status.py`, `clients/`). Library code (registry, clients, models) raises these and never
imports grpc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "Conflict",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "Unavailable",
    "Unimplemented",
    "error_class_for_code",
]

# gRPC code name -> the class that declared it first: the reverse of `grpc_code`.
_CLASS_FOR_CODE: dict[str, type[DomainError]] = {}


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: `field` is a dotted path such as `objects[3].bbox.width`."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the platform reports to a user.

    `reason` is a stable UPPER_SNAKE_CASE identifier (google.rpc.ErrorInfo.reason) that clients
    may switch on; `metadata` carries a few string facts about the failure (ids, limits).
    """

    default_reason = "ERROR"
    # The gRPC status code's name; a subclass inherits its parent's (a bare DomainError, with
    # no category, is UNKNOWN). Declaring it registers the class for `error_class_for_code`.
    grpc_code: ClassVar[str] = "UNKNOWN"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "grpc_code" in cls.__dict__:
            # The first declaration wins: a later, narrower class with the same code (say
            # `TooManyPixels(ResourceExhausted)`) must not become what every client reads back.
            _CLASS_FOR_CODE.setdefault(cls.grpc_code, cls)

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request itself is wrong, whatever the state of the system."""

    grpc_code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        field: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        found = list(violations or [])
        if field is not None:
            found.insert(0, FieldViolation(field=field, description=message))
        self.violations: list[FieldViolation] = found


class NotFound(DomainError):
    """A named resource does not exist."""

    grpc_code = "NOT_FOUND"
    default_reason = "NOT_FOUND"

    def __init__(self, resource_type: str, name: str, *, reason: str | None = None) -> None:
        super().__init__(
            f"{resource_type} {name!r} not found",
            reason=reason,
            metadata={"resource_type": resource_type, "resource_name": name},
        )
        self.resource_type = resource_type
        self.name = name


class AlreadyExists(DomainError):
    """The resource the request would create exists already."""

    grpc_code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class Conflict(DomainError):
    """A concurrent change won (maps to ABORTED: the client may retry the whole operation)."""

    grpc_code = "ABORTED"
    default_reason = "CONFLICT"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the request (e.g. a category still in use)."""

    grpc_code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    """A limit was reached: too many pixels, too many objects in a batch, a full queue."""

    grpc_code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    """A dependency (Triton, Postgres, Qdrant) cannot be reached now; retrying may help."""

    grpc_code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work finished."""

    grpc_code = "DEADLINE_EXCEEDED"
    default_reason = "DEADLINE_EXCEEDED"


class Cancelled(DomainError):
    """The caller cancelled the work."""

    grpc_code = "CANCELLED"
    default_reason = "CANCELLED"


class Unimplemented(DomainError):
    """A method that is part of the contract but not built yet: said honestly, never faked."""

    grpc_code = "UNIMPLEMENTED"
    default_reason = "NOT_BUILT_YET"

    def __init__(self, method: str) -> None:
        super().__init__(
            f"{method} is part of the API contract but is not implemented in this version",
            metadata={"method": method},
        )
        self.method = method


def error_class_for_code(code_name: str) -> type[DomainError] | None:
    """The domain error class that declared the gRPC code `code_name` (e.g. "NOT_FOUND"), or
    None for a code no class declares (OK, UNKNOWN, INTERNAL, DATA_LOSS, ...)."""
    return _CLASS_FOR_CODE.get(code_name)
