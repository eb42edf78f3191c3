"""gunicorn settings for coinquote; every value can be overridden by an environment variable."""

import glob
import multiprocessing
import os
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gthread: a worker waiting on CoinMarketCap (up to ~8 s) keeps serving its other threads.
# See bench/README.md for the measurements behind the defaults.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", 4))  # sync with threads > 1 runs as gthread
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))  # above the 8 s upstream budget
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))  # longer than nginx's upstream keepalive
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 0))
# The app writes one log line per request itself (with request id, symbols and sources).
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Room for the app to answer a too-long query string with its own 422 (it allows 4,096 bytes).
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", 8190))
# Trust X-Forwarded-* only from the proxies in front: the same setting (and default) as the
# app's, so gunicorn (scheme) and the app (client address, host, prefix) agree on who may say.
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES") or "127.0.0.1,::1"

# Prometheus multi-process mode: every worker writes its samples to files in this directory
# and /metrics adds them up. It must be set before a worker imports prometheus_client.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="coinquote-metrics-"))


def on_starting(server):
    """Start from zero: samples of a previous run in the same directory would be added in."""
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
