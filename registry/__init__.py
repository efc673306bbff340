"""The registry: Postgres (the source of truth), Qdrant (embeddings) and files (masks and
images), kept in agreement behind one facade.

At the top:
    coordinator.py  `Registry`, the facade; servers/ reach the registry through it and values/
    repository.py   the Postgres stores in one object, sharing a pool
    database.py     Postgres (embedded or a DSN), migrations/ applied at start-up, the pool
    operations.py   long-running operations as Postgres rows
    migrations/     the numbered SQL migrations (package data, never edited once landed)

Subpackages:
    values/    plain records and pure checks: no I/O, no store
    query/     what a List or a search asks for: filters, order_by, page size, keyset pages
    metadata/  the Postgres stores: sources and frames, categories, objects, tracks, the outbox
    vectors/   the vector store (qdrant-edge or a Qdrant server) and the embedding dimension
    files/     mask files and stored images, written whole or not at all
    datasets/  datasets (define, build, split, export) and COCO/YOLO label sets in and out

Who may import whom (tests/registry/test_layers.py checks it):
    values, files   nothing of the registry
    query           values, database
    vectors         query, database
    metadata        values, query, files, database
    datasets        values, query, files, metadata, database
    operations      database
    repository      metadata, datasets, database
    coordinator     all of the above
A module that takes the facade as an argument (metadata.source_images, datasets.ground_truth)
names `coordinator.Registry` under TYPE_CHECKING only. Nothing here imports servers/ or
protobuf (tests/test_import_rules.py).
"""
