# syntax=docker/dockerfile:1
# coinquote: gunicorn + Flask. Build: docker build -t coinquote .  Run: see docker-compose.yml.

# --- build: resolve and install the dependencies into a virtualenv -------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml setup.cfg README.md ./
COPY src ./src
# Install the project to pull in its pinned dependency ranges, then drop the project itself:
# the code runs from /app, beside its migrations, not from site-packages.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes coinquote

# --- runtime: no compilers, no build files, an unprivileged user ----------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 coinquote \
    && useradd --system --uid 10001 --gid coinquote --home-dir /app --no-create-home coinquote
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./
COPY migrations ./migrations
COPY src ./src
# instance/ holds the SQLite file when no DATABASE_URL is given (demo use only).
RUN mkdir -p /app/instance && chown coinquote:coinquote /app/instance
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GUNICORN_BIND=0.0.0.0:8000
# Forwarded headers count only from TRUSTED_PROXIES (default loopback): a client reaching port
# 8000 directly cannot pick its own address. docker-compose.yml trusts the compose network.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["gunicorn", "wsgi:app"]
