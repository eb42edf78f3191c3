"""/chart?symbol=BTC: the stored history drawn as a line chart, every asset served by the app."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template

# Nothing but this server: the page, its script and uPlot (vendored) all come from here.
CHART_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # uPlot sizes its elements with inline styles
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
])

blp = Blueprint(
    "chart",
    __name__,
    template_folder="templates",
    static_folder="assets",
    static_url_path="/chart-assets",
)


@blp.get("/chart")
def chart_page() -> Response:
    """The page; its script reads `symbol` (and optional history parameters) from the URL."""
    response = Response(render_template("chart.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CHART_CSP
    return response


def register_chart(app: Flask) -> None:
    app.register_blueprint(blp)
