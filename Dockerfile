# Tessera: one image for the monolith and for every group of a split.
#   docker build -t tessera .                      # or: make image
#   docker run --rm ... tessera tessera db upgrade  # a one-off job before each release
#   docker run -p 8000:8000 -e TESSERA_GROUP=tasks ... tessera   # a group of a split; unset: every module
# The image holds the runtime lock and the built wheel (config defaults and migrations inside
# it), never the source tree, a compiler or a development tool. Its root filesystem can be
# read-only: Tessera writes only to its data dir (SQLite; unused on PostgreSQL) and /tmp.
#
# The base is pinned by digest (python:3.11-slim, Debian 12); refresh it deliberately with
#   docker buildx imagetools inspect python:3.11-slim   # the index digest
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock requirements-dev.lock pyproject.toml README.md ./
COPY src ./src
COPY config ./config
COPY migrations ./migrations
# The wheel is built with the locked hatchling (the dev lock), in a venv thrown away with this stage.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements-dev.lock \
 && /opt/build/bin/pip wheel --no-deps --no-build-isolation -w /dist .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.lock \
 && /opt/venv/bin/pip install --no-deps /dist/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tessera" \
      org.opencontainers.image.description="Task management as a modular monolith whose modules can each be extracted into a service by configuration" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TESSERA_PROFILE=production \
    TESSERA_DATA_DIR=/var/lib/tessera/data
RUN useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera \
 && install -d -o tessera -g tessera /var/lib/tessera/data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/tessera
EXPOSE 8000
# The probe asks this container's own port: the group's in a split (TESSERA_GROUP), else server.port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s CMD ["python", "-m", "app.composition.probe", "live"]
# No init process: tessera is PID 1 (exec form), handles SIGTERM itself (drain, then graceful
# shutdown) and reaps its own workers.
STOPSIGNAL SIGTERM
CMD ["tessera", "serve"]
