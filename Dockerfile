# syntax=docker/dockerfile:1
# Two images of the same code, as two targets:
#   api     the base install (the API, and `tunepool db upgrade`): no torch, transformers
#           or peft. The API never runs a model (DESIGN §7), so its processes stay small.
#           docker build --target api -t tunepool-api .
#   worker  the base install plus the `worker` extra (torch, transformers, peft, ...):
#           training and inference workers, serving workers, the control worker (it
#           checks uploads with a tokenizer), beat and Flower. The default (last) target.
# The services differ only in their command and target, so they always run the same code.
FROM python:3.11-slim AS base

# HF_HUB_OFFLINE: models come from the object store or the packaged MiniLM; never a hub.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUNEPOOL_HOME=/var/lib/tunepool \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# A fixed uid, so a bind-mounted TUNEPOOL_HOME can be chowned to it on the host.
# The home directory is created here, owned by that user: a named volume mounted on it
# starts with this ownership, so beat and the workers can write their state.
RUN groupadd --system --gid 10001 tunepool \
 && useradd --system --uid 10001 --gid tunepool --home-dir /home/tunepool --create-home \
      --shell /usr/sbin/nologin tunepool \
 && mkdir -p /var/lib/tunepool \
 && chown tunepool:tunepool /var/lib/tunepool


FROM base AS api
WORKDIR /src
# Only what the distribution is built from (see [tool.setuptools.packages.find]); tests,
# benchmarks and local state stay out of the image (.dockerignore keeps the context small).
COPY pyproject.toml ./
COPY commands ./commands
COPY tunepool ./tunepool
COPY api ./api
COPY worker ./worker
COPY scheduler ./scheduler
COPY storage ./storage
# A regular (non-editable) install: the services import from site-packages, and the
# source tree is removed so nothing can shadow the installed code.
RUN pip install . \
 && rm -rf /src
WORKDIR /var/lib/tunepool
USER tunepool
# No HEALTHCHECK here: docker-compose.yml declares a health check per service.
CMD ["tunepool", "--help"]


FROM base AS worker
# torch is pinned in pyproject.toml's `worker` extra; TORCH_VERSION must stay equal to
# that pin (tests/test_compose.py checks it). It is installed first, from PyTorch's index
# for TORCH_FLAVOR, because the plain Linux wheel on PyPI is the multi-GB CUDA build of
# whatever CUDA it was made for. `cpu` (the default) for CPU and serving workers, control,
# beat and Flower; the GPU worker's image is built with a CUDA flavour (docker-compose.yml
# passes TORCH_FLAVOR=cu128 for it): `pip install .[worker]` then finds
# torch==TORCH_VERSION already satisfied and keeps the CUDA wheel. A worker that sees
# NVIDIA GPUs but has a CPU build of torch refuses to start (worker/cuda_check.py). The
# host needs the NVIDIA Container Toolkit.
ARG TORCH_VERSION=2.13.0
ARG TORCH_FLAVOR=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_FLAVOR}
# Its own layer, before the code: torch is by far the largest dependency and changes least.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml ./
COPY commands ./commands
COPY tunepool ./tunepool
COPY api ./api
COPY worker ./worker
COPY scheduler ./scheduler
COPY storage ./storage
RUN pip install ".[worker]" \
 && rm -rf /src
WORKDIR /var/lib/tunepool
USER tunepool
CMD ["tunepool", "--help"]
