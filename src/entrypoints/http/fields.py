"""What the resources' schemas share: symbol lists, one value per parameter, currencies,
timestamps, error examples, and how nullable nested fields are written into the OpenAPI document
(for generated clients). No business rules: the domain checks, these fields describe."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate
from webargs.fields import DelimitedList
from werkzeug.datastructures import MultiDict

from src.domain.errors import InvalidRequest
from src.domain.model import (
    MAX_SYMBOL_LENGTH,
    MAX_SYMBOLS_PER_REQUEST,
    normalise_currency,
    parse_symbols,
)

SYMBOL_PATTERN = f"^[A-Za-z0-9]{{1,{MAX_SYMBOL_LENGTH}}}$"


def _symbol_field(**metadata: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=MAX_SYMBOL_LENGTH),
        metadata={"pattern": SYMBOL_PATTERN, **metadata},
    )


class SymbolList(DelimitedList):
    """Comma-separated symbols (OpenAPI: a form-style array), loaded normalised and distinct.

    The domain's parse_symbols does all the checking, so every rule and message lives in one
    place; the inner field and the Length validator only describe those rules in the document.
    Sent repeated (`symbol=BTC&symbol=ETH,SOL`), the values are one list, in order
    (see OneValueEach).
    """

    merges_repeats = True

    def __init__(self, max_symbols: int = MAX_SYMBOLS_PER_REQUEST, **kwargs: Any) -> None:
        super().__init__(
            _symbol_field(example="BTC"),
            validate=validate.Length(min=1, max=max_symbols),
            **kwargs,
        )
        self.max_symbols = max_symbols

    def _deserialize(self, value: Any, attr: str | None, data: Any,  # type: ignore[override]
                     **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, str):
            raise ValidationError("symbol must be a comma-separated string, e.g. BTC,ETH")
        try:
            symbols = parse_symbols(value)
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None
        if len(symbols) > self.max_symbols:
            raise ValidationError(f"at most {self.max_symbols} symbols per request")
        return symbols


REPEATED_SYMBOL_HELP = (
    " Repeating the parameter (`symbol=BTC&symbol=ETH`, as generated clients send a list) means"
    " the same as a comma list: the values are merged, in order. Any other parameter sent twice"
    " is a 422 naming it."
)


class OneValueEach(Schema):
    """Query arguments in which no parameter sent twice is silently cut to its first value.

    A list parameter (`merges_repeats`) sent several times is the comma-joined list of its
    values, in order; any other declared parameter sent twice is a 422 naming it.
    """

    @pre_load
    def merge_or_refuse_repeats(self, data: Any, **kwargs: Any) -> Any:
        raw = getattr(data, "data", None)  # webargs' MultiDictProxy over request.args
        if not isinstance(raw, MultiDict):
            return data
        loaded: dict[str, Any] = {}
        refused: dict[str, list[str]] = {}
        for name, values in raw.lists():
            field = self.fields.get(name)
            if len(values) == 1 or field is None:
                loaded[name] = values[0]  # an undeclared parameter is ignored anyway
            elif getattr(field, "merges_repeats", False):
                loaded[name] = ",".join(values)
            else:
                refused[name] = [f"{name} was sent {len(values)} times; send it once"]
        if refused:
            raise ValidationError(refused)
        return loaded


class Currency(fields.String):
    """One currency symbol (fiat or crypto), loaded upper-case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_currency(text)
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None


class Timestamp(fields.DateTime):
    """UTC time as CoinMarketCap writes it: 2026-11-26T03:00:00.000Z."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_example(code: int, status: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error body as the error handlers write it, for the OpenAPI document's examples."""
    return {"code": code, "status": status, "message": message, **extra}




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
