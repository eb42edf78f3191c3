"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from src.domain.errors import StorageError
from src.entrypoints.wiring import wiring


class HealthSchema(Schema):
    """Liveness or readiness, with each component's state."""

    status = fields.String(required=True, metadata={
        "description": "`ok`, or `failing: ` and the failing components.", "example": "ok"})
    checks = fields.Dict(required=True, keys=fields.String(), values=fields.String(),
                         metadata={"description": "Each component checked and its state (none"
                                   " for liveness).",
                                   "example": {"database": "ok", "cache": "ok"}})


blp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(operationId="get_liveness")
    @blp.response(200, HealthSchema, description="The process is up.",
                  example={"status": "ok", "checks": {}})
    def get(self) -> dict[str, Any]:
        """Liveness: 200 while the process is up (touches nothing else)"""
        return {"status": "ok", "checks": {}}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(operationId="get_readiness")
    @blp.response(200, HealthSchema, description="The database and the cache answer.",
                  example={"status": "ok", "checks": {"database": "ok", "cache": "ok"}})
    @blp.alt_response(
        503, schema=HealthSchema,
        description="A component fails; it is named (the cache: each failing memcached server).",
        example={"status": "failing: cache",
                 "checks": {"database": "ok",
                            "cache": "failing: memcached 10.0.0.7:11211 unreachable"
                                     " (ConnectionRefusedError)"}},
    )
    def get(self) -> Any:
        """Readiness: 200 when the database and every cache server answer, 503 naming what fails"""
        built = wiring()
        checks = {}
        for name, component in (("database", built.repository), ("cache", built.cache)):
            try:
                component.ping()
                checks[name] = "ok"
            except StorageError as exc:
                checks[name] = f"failing: {exc}"
        failing = [name for name, state in checks.items() if state != "ok"]
        body = {"status": "failing: " + ", ".join(failing) if failing else "ok", "checks": checks}
        return (body, 503) if failing else body
