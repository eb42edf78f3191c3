"""GET /usage: `resources` (the view, and the /metrics gauges it fills) and `schemas`."""
