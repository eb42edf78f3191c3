"""Schemathesis hooks (schemathesis.toml `hooks`): the history's rules the document cannot state.

The OpenAPI pattern says which forms `time_start` and `time_end` take, but not the calendar
(no 30 February) nor that `time_start` may not be after `time_end` (or now): both are a 422 by
the contract (README "Price history"). Generated queries whose times are in the documented
form but break one of those rules are left out; every other query, including every time that
breaks the pattern, is sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import schemathesis

from src.domain.history import InvalidHistoryParameter, parse_time
from src.entrypoints.http.history.schemas import TIME_PATTERN

_TIME_RE = re.compile(TIME_PATTERN)


@schemathesis.hook.apply_to(operation_id="get_quote_history")
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    return not breaks_a_rule_the_schema_cannot_state(query or {})


def breaks_a_rule_the_schema_cannot_state(query: dict[str, Any]) -> bool:
    times = {}
    for name in ("time_start", "time_end"):
        value = query.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
            return False  # outside the documented form: the 422 it gets is for that
        try:
            times[name] = parse_time(value, name)
        except InvalidHistoryParameter:
            return True  # in the form, not in the calendar
    start = times.get("time_start")
    return start is not None and start > times.get("time_end", datetime.now(UTC))
