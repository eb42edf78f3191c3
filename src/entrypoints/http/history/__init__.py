"""GET /api/v1/quotes/history: `resources` (the view) and `schemas` (query and response)."""
