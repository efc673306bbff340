"""Starts the mesh's servers as children of this process, settings as flags: for the tests
(real servers on loopback) and the benchmarks.

They are started by the same launcher as `alabel up` (`agentic_labeling.local.launcher`); what
differs is only what `alabel up` needs and a test does not: `up` detaches its servers and passes
settings in the environment, while here the settings are flags on the command line (so what runs
is what the command line says) and the server dies with the test. Each start waits until the
process serves, and reports a process that died during start-up with its log, instead of
hanging. Servers get a free port for gRPC and, unless told otherwise, for their Prometheus
`/metrics` endpoint too, so that two of them never collide on a default port; both ports are
read back from the port files the server writes (`<kind>.port` and `<kind>.port.metrics`).
tritonserver is started by agentic_labeling.triton_server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentic_labeling.errors import Unavailable
from agentic_labeling.local.addresses import unused_port
from agentic_labeling.local.launcher import (
    START_TIMEOUT_S,
    ManagedProcess,
    environment_without_settings,
    log_tail,
    start_server,
)

__all__ = ["ManagedProcess", "start_server_process", "unused_port"]

# How much of a failed start's log the error shows.
_FAILURE_LOG_LINES = 60


def start_server_process(
    kind: str,
    workdir: Path,
    settings_flags: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    timeout_s: float = START_TIMEOUT_S,
    metrics_port: int | None = 0,
) -> ManagedProcess:
    """Start `alabel <flags> serve <kind>` on a free port of `host`; return once it serves.

    `kind` is "registry" or "orchestrator"; its log goes to `workdir/<kind>.log`.
    `metrics_port` is its /metrics port: 0 (default) a free one, -1 none, None whatever
    `settings_flags` or the setting's default say. A `--<kind>-metrics-port` in
    `settings_flags` wins, as it comes later on the command line.
    """
    metrics_flags = [] if metrics_port is None else [f"--{kind}-metrics-port", str(metrics_port)]
    flags = ["--host", host, f"--{kind}-port", "0", *metrics_flags, *settings_flags]
    try:
        return start_server(
            kind,
            workdir,
            env=environment_without_settings(),
            host=host,
            timeout_s=timeout_s,
            flags=flags,
        )
    except Unavailable as error:
        # A test's failure shows the server's own words, not only where its log is.
        start = int(error.metadata.get("log_start", "0"))
        tail = log_tail(error.metadata.get("log"), _FAILURE_LOG_LINES, start)
        raise Unavailable(
            f"{error.message}:\n" + "\n".join(tail),
            reason=error.reason,
            metadata=error.metadata,
        ) from None
