"""The vector store: one embedding per object, searched with filters (Postgres stays the
source of truth).

vector_store.py          the VectorStore interface (both stores), points and payloads
edge_vectors.py          the embedded store: qdrant-edge in data_dir/qdrant
qdrant_server_vectors.py the store on a Qdrant server or cluster (--qdrant-url)
vector_filters.py        AIP-160 filters as Qdrant payload filters, and that payload
embedding_dimension.py   the dimension: decided once, recorded in Postgres, agreed at start
"""
