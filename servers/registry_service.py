"""RegistryService, DatasetService, TrainingService and google.longrunning.Operations.

Built so far: the request checks of the List methods (page_size, filter, order_by), which
answer a bad field with INVALID_ARGUMENT naming it. The stores behind them (Postgres, Qdrant,
mask files) are not built yet: every method answers UNIMPLEMENTED after its checks.
"""

from __future__ import annotations

from typing import Any

from google.longrunning import operations_pb2, operations_pb2_grpc

from agentic_labeling.errors import Unimplemented
from agentic_labeling.filtering import FilterSchema, parse_filter
from agentic_labeling.listing import effective_page_size, parse_order_by
from agentic_labeling.registry import queryable_fields as fields
from agentic_labeling.servers.unbuilt import answer_unbuilt_methods
from agentic_labeling.v1 import (
    dataset_pb2,
    dataset_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

__all__ = ["DatasetServicer", "OperationsServicer", "RegistryServicer", "TrainingServicer"]

_REGISTRY = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"]


def _check_list(request: Any, schema: FilterSchema, orderable: frozenset[str]) -> None:
    effective_page_size(request.page_size)
    parse_filter(request.filter, schema)
    parse_order_by(request.order_by, orderable)


@answer_unbuilt_methods(_REGISTRY)
class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    async def ListObjects(
        self, request: registry_pb2.ListObjectsRequest, context: Any
    ) -> registry_pb2.ListObjectsResponse:
        _check_list(request, fields.OBJECT_FILTER, fields.OBJECT_ORDER)
        raise Unimplemented(f"{_REGISTRY.full_name}.ListObjects (object store)")

    async def ListSources(
        self, request: registry_pb2.ListSourcesRequest, context: Any
    ) -> registry_pb2.ListSourcesResponse:
        _check_list(request, fields.SOURCE_FILTER, fields.SOURCE_ORDER)
        raise Unimplemented(f"{_REGISTRY.full_name}.ListSources (source store)")

    async def ListCategories(
        self, request: registry_pb2.ListCategoriesRequest, context: Any
    ) -> registry_pb2.ListCategoriesResponse:
        _check_list(request, fields.CATEGORY_FILTER, fields.CATEGORY_ORDER)
        raise Unimplemented(f"{_REGISTRY.full_name}.ListCategories (category store)")

    async def ListTracks(
        self, request: registry_pb2.ListTracksRequest, context: Any
    ) -> registry_pb2.ListTracksResponse:
        _check_list(request, fields.TRACK_FILTER, fields.TRACK_ORDER)
        raise Unimplemented(f"{_REGISTRY.full_name}.ListTracks (track store)")


@answer_unbuilt_methods(dataset_pb2.DESCRIPTOR.services_by_name["DatasetService"])
class DatasetServicer(dataset_pb2_grpc.DatasetServiceServicer):
    """Every method answers UNIMPLEMENTED until datasets are built."""


@answer_unbuilt_methods(training_pb2.DESCRIPTOR.services_by_name["TrainingService"])
class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    """Every method answers UNIMPLEMENTED until training is built."""


@answer_unbuilt_methods(operations_pb2.DESCRIPTOR.services_by_name["Operations"])
class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """google.longrunning.Operations for the slow dataset and training methods."""
