"""The HTTP API (flask-smorest): one sub-package per resource, and what they share.

`quotes/` (GET /api/v1/quotes: resources, schemas, the renderer), `history/` (GET
/api/v1/quotes/history), `usage/` (GET /usage), `chart/` (the /chart page and its assets),
`health` (/healthz, /readyz), `docs` (Swagger UI and ReDoc served locally), `errors` (the one
table from domain error to HTTP status), `fields` (what the resources' schemas share: symbol
lists, timestamps, error examples) and `caching` (Cache-Control, ETag, 304).
"""
