"""The registry server process: RegistryService, DatasetService, TrainingService and
google.longrunning.Operations (for their slow methods), with health and reflection.

The stores open before the server listens (embedded Postgres and Qdrant start, migrations
and any outbox left by a crash are applied, operations a crash left running are ended as
ABORTED and the staging directories of interrupted exports are removed) and close after it
has stopped (the outbox drained first), so no RPC ever meets a closed store.
`alabel serve registry` calls `run`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from google.longrunning import operations_pb2_grpc

from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.servers.bootstrap import ServiceRegistration, run_server
from agentic_labeling.servers.dataset_service import DatasetServicer, staging_token
from agentic_labeling.servers.operation_store import OperationStore
from agentic_labeling.servers.registry_service import OperationsServicer, RegistryServicer
from agentic_labeling.servers.training_service import INTERRUPTED_RUN_MESSAGE, TrainingServicer
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import dataset_pb2_grpc, registry_pb2_grpc, training_pb2_grpc

__all__ = ["open_services", "run", "services"]

logger = logging.getLogger(__name__)

STALE_BUILD_AFTER = timedelta(minutes=10)


def services(
    registry: Registry, operations: OperationStore, settings: Settings
) -> Sequence[ServiceRegistration]:
    return [
        ServiceRegistration(
            "agentic_labeling.v1.RegistryService",
            functools.partial(
                registry_pb2_grpc.add_RegistryServiceServicer_to_server, RegistryServicer(registry)
            ),
        ),
        ServiceRegistration(
            "agentic_labeling.v1.DatasetService",
            functools.partial(
                dataset_pb2_grpc.add_DatasetServiceServicer_to_server,
                DatasetServicer(registry, operations),
            ),
        ),
        ServiceRegistration(
            "agentic_labeling.v1.TrainingService",
            functools.partial(
                training_pb2_grpc.add_TrainingServiceServicer_to_server,
                TrainingServicer(
                    registry,
                    operations,
                    student_repository=settings.student_repository,
                    mlflow_uri=settings.mlflow_uri,
                ),
            ),
        ),
        ServiceRegistration(
            "google.longrunning.Operations",
            functools.partial(
                operations_pb2_grpc.add_OperationsServicer_to_server,
                OperationsServicer(operations),
            ),
        ),
    ]


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Sequence[ServiceRegistration]]:
    """The services on opened stores, which are closed again on exit."""
    registry = await Registry.open(settings)
    try:
        # Builds run inside a server; one BUILDING for this long had its server die under it.
        await registry.fail_stale_builds(STALE_BUILD_AFTER)
        operations = OperationStore(registry.operation_records, owner=registry.operation_owner)
        await operations.recover()
        # Runs are trained by the process that started them: this instance's unfinished ones
        # were left by a predecessor that stopped (their operations just read as ABORTED).
        failed_runs = await registry.fail_unfinished_runs(INTERRUPTED_RUN_MESSAGE)
        if failed_runs:
            logger.warning(
                "training runs left unfinished by a stopped registry are now FAILED",
                extra={"runs": [str(r) for r in failed_runs]},
            )
        await _sweep_export_staging(registry, operations)
    except BaseException:
        await registry.close()
        raise
    try:
        yield services(registry, operations, settings)
    finally:
        await operations.close()  # running jobs stop (and clean up) before the stores close
        await registry.close(drain_outbox_s=settings.shutdown_grace_s)


async def _sweep_export_staging(registry: Registry, operations: OperationStore) -> None:
    """Remove the staging directories that exports interrupted by a crash left behind."""

    async def live_tokens() -> set[str]:
        return {
            staging_token(UUID(n.removeprefix("operations/")))
            for n in await operations.running_names()
        }

    removed = await registry.sweep_export_staging(live_tokens)
    if removed:
        logger.info(
            "removed staging directories of interrupted exports",
            extra={"directories": [str(p) for p in removed]},
        )


def run(settings: Settings, *, port_file: Path | None = None) -> None:
    """Serve the registry on settings.host:settings.registry_port until SIGTERM or SIGINT."""
    run_server(
        settings,
        name="registry",
        port=settings.registry_port,
        services_factory=functools.partial(open_services, settings),
        port_file=port_file,
    )
