# syntax=docker/dockerfile:1
# NGC tritonserver with the agentic-labeling package installed in its Python, which is where
# the Python backend runs model_repository/*/1/model.py (they import agentic_labeling.models).
# Baked in, not installed at container start: a start needs no network and every replica runs
# the same versions. The model repository itself is mounted (see docker-compose.yml), so
# `docker compose build triton` after a change to the package, not after one to configs.
#
# TRITON_VERSION: 24.12 or later. Those releases are Ubuntu 24.04 with Python 3.12, and the
# Python backend's stub is built for that Python; the package needs Python 3.11 or 3.12.
ARG TRITON_VERSION=24.12
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

# The image's system Python is marked externally managed (PEP 668); in this single-purpose
# image it is the environment the stub runs, so install into it.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -c "import sys; v = sys.version_info[:2]; assert (3, 11) <= v < (3, 13), \
f'this tritonserver image has Python {v[0]}.{v[1]}; agentic-labeling needs 3.11 or 3.12:' \
' build with TRITON_VERSION 24.12 or later'" \
 && (python3 -m pip --version \
     || (apt-get update && apt-get install -y --no-install-recommends python3-pip \
         && rm -rf /var/lib/apt/lists/*))

# The models' extra (pyproject.toml): torch, transformers; no database or Qdrant client. numpy < 2
# comes with the package (with numpy 2 a BYTES tensor kills the stub), and torch from PyPI is a
# CUDA build: the models run on the GPUs Triton gives their instances.
WORKDIR /build/agentic-labeling
COPY pyproject.toml README.md ./
COPY src/ src/
COPY servers/ servers/
COPY registry/ registry/
COPY clients/ clients/
RUN python3 -m pip install '.[models]' && cd / && rm -rf /build

# `alabel-healthcheck http://127.0.0.1:8000/v2/health/ready`: exit 0 when Triton is ready.
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/alabel-healthcheck

WORKDIR /opt/tritonserver
