# syntax=docker/dockerfile:1
# The registry and orchestrator image: the agentic-labeling package on python:3.11-slim.
# Built by docker-compose.yml from the repository root; `docker compose build` after a change.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# servers/, registry/ and clients/ are reached through symlinks under src/agentic_labeling/:
# copied side by side as in the repository, the links resolve and the build follows them.
WORKDIR /build/agentic-labeling
COPY pyproject.toml README.md ./
COPY src/ src/
COPY servers/ servers/
COPY registry/ registry/
COPY clients/ clients/
# The two servers' extras (pyproject.toml): Postgres, Qdrant, exports and Triton's client. These
# servers never run a model, so no torch (tests/test_docker_compose.py checks both).
RUN pip install '.[registry,orchestrator]' && cd / && rm -rf /build

# `alabel-healthcheck grpc://127.0.0.1:PORT`: exit 0 when the server's gRPC health is SERVING.
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/alabel-healthcheck

# A user of its own; ALABEL_DATA_DIR (masks) is its home, where the compose file mounts the
# masks volume (a new named volume takes this directory's owner).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/alabel alabel
USER alabel
WORKDIR /var/lib/alabel

# The servers stop gracefully on SIGTERM (`docker stop`), finishing in-flight RPCs.
CMD ["alabel", "--help"]
