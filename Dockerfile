# syntax=docker/dockerfile:1
# coinquote: gunicorn + Flask. Build: make image (docker build -t coinquote .). Run: see
# docker-compose.yml. PYTHON_IMAGE is the base; tests/e2e/test_image.py builds on a stand-in
# made from Debian packages where the official one cannot be pulled (scripts/image.sh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve and install the dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build
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
FROM ${PYTHON_IMAGE}
# A home of its own: gunicorn puts its control socket in ~/.gunicorn (with /app as home, which
# the user cannot write, it logged "Control server error: Permission denied" at every start).
RUN groupadd --system --gid 10001 coinquote \
    && useradd --system --uid 10001 --gid coinquote --home-dir /home/coinquote --create-home \
       coinquote
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
# The port follows GUNICORN_BIND: a run that moves it (say, on a shared host network) is
# still checked. Any answer but 2xx, or none in 2 s, fails.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["python", "-c", \
    "import os, urllib.request as u; port = os.environ['GUNICORN_BIND'].rpartition(':')[2]; \
     u.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
CMD ["gunicorn", "wsgi:app"]
