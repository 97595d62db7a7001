# Tessera: one image for the monolith and for every extracted service.
#   docker build -t tessera .
#   docker run --rm -e TESSERA_SECURITY__SIGNING_KEY_FILE=/run/secrets/key ... tessera tessera db upgrade
#   docker run -p 8000:8000 ... tessera
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# Editable: the code stays at /app/src, beside config/ and migrations/ (see app.kernel.paths).
RUN /opt/venv/bin/pip install --no-deps -e .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TESSERA_PROFILE=production
RUN useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY config ./config
COPY migrations ./migrations
USER tessera
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live').status != 200)"
CMD ["tessera", "serve"]
