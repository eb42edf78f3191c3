"""The floor: a bare Flask endpoint doing one pymemcache get of a stored quote document.

Nothing can do less and still answer from the cache; coinquote's cache hit is measured against
it, under the same gunicorn.conf.py. Run: gunicorn -c gunicorn.conf.py bench.baseline:app
"""

import os

from flask import Flask, Response
from pymemcache.client.base import PooledClient

host, _, port = os.environ["BASELINE_MEMCACHED"].rpartition(":")
client = PooledClient((host, int(port)), connect_timeout=0.25, timeout=0.25)
app = Flask(__name__)


@app.get("/api/v1/quotes")
def quotes() -> Response:
    document = client.get("baseline:BTC")
    return Response(document, mimetype="application/json")
