"""CPU per request of one gunicorn sync worker, coinquote (cache hit) vs the baseline.

Throughput on a shared 2-core machine swings from run to run; the worker's own CPU time per
request (utime + stime from /proc) is far steadier, and says where coinquote's cost goes.

    python -m bench.cpu [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from tests.servers import Memcached, Postgres, free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


def worker_cpu_seconds(master: subprocess.Popen) -> float:
    total = 0
    pids = subprocess.run(["ps", "--ppid", str(master.pid), "-o", "pid="], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    memcached, postgres = Memcached().start(), Postgres().start()
    processes: list[subprocess.Popen] = []
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "CMC_"))}
        base_env.update(GUNICORN_WORKERS="1", GUNICORN_THREADS="1", GUNICORN_WORKER_CLASS="sync")

        def start(target: str, extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", target], cwd=ROOT,
                env={**base_env, **extra, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(process)
            wait_for_port(port, 30, process)
            return process, f"http://127.0.0.1:{port}"

        fake_port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.fake_cmc", "--port", str(fake_port), "--api-key", "k"],
            cwd=ROOT, env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(fake_port)
        env = {"CMC_API_KEY": "k", "CMC_BASE_URL": f"http://127.0.0.1:{fake_port}",
               "DATABASE_URL": postgres.url, "MEMCACHED_SERVERS": memcached.address,
               "CACHE_TTL_SECONDS": "3600"}
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                       env={**base_env, **env}, check=True, capture_output=True)
        app, app_url = start("wsgi:app", env)
        document = requests.get(app_url + "/api/v1/quotes?symbol=BTC", timeout=10).content
        from pymemcache.client.base import Client

        host, _, port = memcached.address.rpartition(":")
        Client((host, int(port))).set("baseline:BTC", document)
        baseline, baseline_url = start("bench.baseline:app", {"BASELINE_MEMCACHED": memcached.address})

        for name, process, url in (("baseline", baseline, baseline_url + "/api/v1/quotes"),
                                   ("coinquote cache hit", app, app_url + "/api/v1/quotes?symbol=BTC")):
            before = worker_cpu_seconds(process)
            out = subprocess.run(["wrk", "-t1", "-c4", f"-d{args.seconds}s", url], capture_output=True,
                                 text=True, check=True).stdout
            served = int(re.search(r"(\d+) requests in", out).group(1))
            spent = worker_cpu_seconds(process) - before
            print(f"{name}: {spent / served * 1e6:.0f} us of worker CPU per request ({served} requests)")
    finally:
        for process in reversed(processes):
            stop(process)
        memcached.close()
        postgres.close()


if __name__ == "__main__":
    main()
