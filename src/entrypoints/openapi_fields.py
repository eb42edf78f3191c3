"""How marshmallow fields are written into the OpenAPI document, for generated clients."""

from __future__ import annotations

from typing import Any


def nullable_reference(self: Any, field: Any, ret: dict[str, Any], **kwargs: Any) -> dict:
    """apispec attribute function: a nullable Nested field as `allOf: [$ref]` + `nullable`.

    apispec writes OpenAPI 3.0's nullable reference as `anyOf: [{type: object, nullable:
    true}, $ref]`, whose first branch accepts any object: clients then type it as a loose dict
    and response validation never checks its contents. Runs after apispec's own functions and
    replaces that `anyOf` in the property being built.
    """
    branches = ret.get("anyOf")
    if not (getattr(field, "allow_none", False) and isinstance(branches, list)):
        return {}
    refs = [branch for branch in branches if "$ref" in branch]
    if len(refs) != 1 or len(branches) != 2 or {"type": "object", "nullable": True} not in branches:
        return {}
    del ret["anyOf"]
    return {"allOf": refs, "nullable": True}
