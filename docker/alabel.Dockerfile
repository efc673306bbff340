# syntax=docker/dockerfile:1
# The registry and orchestrator image: the agentic-labeling package on python:3.11-slim.
# Built by docker-compose.yml from the repository root; `docker compose build` after a change.
FROM python:3.11-slim

# torch and torchvision are dependencies of the package (agentic_labeling.models), but these
# servers never run a model, so they get the CPU build: far smaller than the CUDA one PyPI
# serves. The pins are pyproject.toml's (tests/test_docker_compose.py checks they agree).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1

# servers/, registry/ and clients/ are reached through symlinks under src/agentic_labeling/:
# copied side by side as in the repository, the links resolve and the build follows them.
WORKDIR /build/agentic-labeling
COPY pyproject.toml README.md ./
COPY src/ src/
COPY servers/ servers/
COPY registry/ registry/
COPY clients/ clients/
RUN pip install . && cd / && rm -rf /build

# `alabel-healthcheck grpc://127.0.0.1:PORT`: exit 0 when the server's gRPC health is SERVING.
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/alabel-healthcheck

# A user of its own; ALABEL_DATA_DIR (masks) is its home, where the compose file mounts the
# masks volume (a new named volume takes this directory's owner).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/alabel alabel
USER alabel
WORKDIR /var/lib/alabel

# The servers stop gracefully on SIGTERM (`docker stop`), finishing in-flight RPCs.
CMD ["alabel", "--help"]
