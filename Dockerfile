# Tessera: one image for the monolith and for every extracted service.
#   docker build -t tessera .
#   docker run --rm -e TESSERA_SECURITY__SIGNING_KEY_FILE=/run/secrets/key ... tessera tessera db upgrade
#   docker run -p 8000:8000 ... tessera
# The image holds the runtime lock and the built wheel (config defaults and migrations
# inside it), never the source tree or a development tool.
FROM python:3.11-slim AS build
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
 && /opt/venv/bin/pip install --no-deps /dist/*.whl

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TESSERA_PROFILE=production
RUN useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera
COPY --from=build /opt/venv /opt/venv
USER tessera
WORKDIR /var/lib/tessera
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live').status != 200)"
CMD ["tessera", "serve"]
