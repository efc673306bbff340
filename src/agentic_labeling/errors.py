"""Domain errors, raised where the fact is known.

Each class names what went wrong in the user's terms; `servers/error_status.py` is the one
place that turns them into gRPC status codes with google.rpc details. Library code (registry,
clients, models) raises these and never imports grpc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
]


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

    default_reason = "ALREADY_EXISTS"


class Conflict(DomainError):
    """A concurrent change won (maps to ABORTED: the client may retry the whole operation)."""

    default_reason = "CONFLICT"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the request (e.g. a category still in use)."""

    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    """A limit was reached: too many pixels, too many objects in a batch, a full queue."""

    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    """A dependency (Triton, Postgres, Qdrant) cannot be reached now; retrying may help."""

    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work finished."""

    default_reason = "DEADLINE_EXCEEDED"


class Cancelled(DomainError):
    """The caller cancelled the work."""

    default_reason = "CANCELLED"


class Unimplemented(DomainError):
    """A method that is part of the contract but not built yet: said honestly, never faked."""

    default_reason = "NOT_BUILT_YET"

    def __init__(self, method: str) -> None:
        super().__init__(
            f"{method} is part of the API contract but is not implemented in this version",
            metadata={"method": method},
        )
        self.method = method
