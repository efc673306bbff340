"""The Postgres side of the registry in one object: one store per resource, sharing a pool.

    db = await open_database(settings.postgres_dsn, settings.data_dir)
    repo = Repository(db, embedding_dim=768)
    source = await repo.sources.create(NewSource(SourceKind.IMAGE, 640, 480, ...))
    result = await repo.objects.batch_create(request_id, [NewObject(...), ...])
    for op in await repo.outbox.pending():          # after commit: apply to Qdrant, then
        ...
    await repo.outbox.mark_applied(ids)

Each store holds the SQL for its resource; handlers call these methods and never write SQL.
"""

from __future__ import annotations

from agentic_labeling.registry.database import Database
from agentic_labeling.registry.datasets.datasets import DatasetStore
from agentic_labeling.registry.metadata.categories import CategoryStore
from agentic_labeling.registry.metadata.object_batches import BatchLimits
from agentic_labeling.registry.metadata.objects import ObjectStore
from agentic_labeling.registry.metadata.outbox import StoreScans, VectorOutbox
from agentic_labeling.registry.metadata.sources import SourceStore
from agentic_labeling.registry.metadata.tracks import TrackStore

__all__ = ["Repository"]


class Repository:
    """Sources (with frames), categories, objects, tracks, the vector outbox and reconcile
    scans over one Database.

    `embedding_dim`: the dimension every stored embedding must have (None: any, up to
    pgvector's 16000). `duplicate_iou_threshold`: the default IoU above which a new object
    merges into an existing one. `max_batch_objects`: the most objects one batch may hold.
    """

    def __init__(
        self,
        db: Database,
        *,
        embedding_dim: int | None = None,
        duplicate_iou_threshold: float = 0.9,
        max_batch_objects: int = 10_000,
    ) -> None:
        self.db = db
        self.sources = SourceStore(db)
        self.categories = CategoryStore(db)
        self.objects = ObjectStore(
            db,
            BatchLimits(
                embedding_dim=embedding_dim,
                default_iou_threshold=duplicate_iou_threshold,
                max_batch_objects=max_batch_objects,
            ),
        )
        self.tracks = TrackStore(db)
        self.outbox = VectorOutbox(db)
        self.scans = StoreScans(db)
        self.datasets = DatasetStore(db)
