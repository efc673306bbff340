#!/usr/bin/env python3
"""Container health check: exit 0 when the target is ready, 1 when it is not.

    alabel-healthcheck grpc://127.0.0.1:50051
        the server's standard gRPC health (the whole server, service "") is SERVING
    alabel-healthcheck http://127.0.0.1:8000/v2/health/ready
        the URL answers 200

docker-compose.yml runs it in the registry and orchestrator containers (gRPC) and in Triton's
(HTTP), so the images need neither curl nor grpc_health_probe. Copied into both images as
/usr/local/bin/alabel-healthcheck; both images install the package, so for gRPC it uses
grpcio, grpcio-health-checking and the package's channel options; HTTP needs only the standard
library. The target is local: proxies are ignored.
Why a check failed goes to stderr, which `docker inspect` shows under State.Health.
"""

from __future__ import annotations

import sys
import urllib.request

TIMEOUT_S = 3.0
UNHEALTHY = 1  # Docker reads 0 as healthy, 1 as unhealthy, and reserves every other status


def grpc_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from agentic_labeling.channel_options import channel_options

    # The server is in this container, whatever address it was given: never via a proxy.
    with grpc.insecure_channel(address, options=channel_options(address, local=True)) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S
            )
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}", file=sys.stderr)
            return False
    status = str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    if status != "SERVING":
        print(f"{address}: {status}", file=sys.stderr)
    return status == "SERVING"


def http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            return int(response.status) == 200
    except (OSError, ValueError) as error:  # refused, timed out, 4xx/5xx (HTTPError)
        print(f"{url}: {error}", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) == 2 else ""
    if target.startswith("grpc://"):
        return 0 if grpc_serving(target.removeprefix("grpc://")) else UNHEALTHY
    if target.startswith(("http://", "https://")):
        return 0 if http_ok(target) else UNHEALTHY
    print("usage: alabel-healthcheck grpc://HOST:PORT | http://HOST:PORT/PATH", file=sys.stderr)
    return UNHEALTHY


if __name__ == "__main__":
    sys.exit(main(sys.argv))
