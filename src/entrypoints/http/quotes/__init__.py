"""GET /api/v1/quotes: `resources` (the view and its documentation), `schemas` (query and
response), `render` (the body as JSON text, assembled from memoised fragments)."""
