"""marshmallow schemas of GET /usage: credit budget, refresh-ahead and freshness. No rules."""

from __future__ import annotations

from marshmallow import Schema, fields

from src.entrypoints.http.fields import Timestamp


class PlanSchema(Schema):
    daily_credits = fields.Integer(
        metadata={"description": "Credits coinquote may spend per UTC day."})
    calls_per_minute = fields.Integer(
        metadata={"description": "Calls coinquote may make per minute, all processes together."})
    source = fields.String(metadata={"description": "Where the plan comes from.",
                                     "enum": ["configured", "key_info", "default"]})


class ByPurposeSchema(Schema):
    request = fields.Integer(metadata={"description": "For symbols with nothing fresh stored."})
    refresh = fields.Integer(metadata={"description": "For refresh-ahead rounds."})
    convert = fields.Integer(metadata={"description": "For live conversions."})


class TodaySchema(Schema):
    date = fields.String(metadata={"description": "The UTC day counted.", "format": "date"})
    credits_used = fields.Integer()
    credits_left = fields.Integer()
    by_purpose = fields.Nested(ByPurposeSchema)
    spent_elsewhere = fields.Integer(metadata={
        "description": "Credits CoinMarketCap counted today beyond coinquote's own (key info)."})
    request_reserve = fields.Integer(
        metadata={"description": "Credits only symbols with nothing stored may use."})
    refresh_need = fields.Integer(metadata={
        "description": "Credits refresh-ahead needs for the rest of the day to keep the hot"
                       " symbols within the max age; conversions come after it."})
    convert_cap = fields.Integer(metadata={
        "description": "Credits conversions may have used by the end of the day."})
    resets_at = Timestamp(metadata={"description": "When the day's credits come back."})


class MinuteSchema(Schema):
    calls = fields.Integer(metadata={"description": "Calls made in the current minute."})
    calls_left = fields.Integer()


class BlockedSchema(Schema):
    upstream_code = fields.Integer(metadata={"description": "CoinMarketCap's verdict (1008-1011)."})
    until = Timestamp(metadata={"description": "No call is made before this time."})


class RefreshSchema(Schema):
    window_seconds = fields.Integer(
        metadata={"description": "Symbols requested within this window are kept fresh (0: off)."})
    interval_seconds = fields.Float(allow_none=True,
                                    metadata={"description": "Time between two refresh rounds."})
    symbols = fields.Integer(metadata={"description": "Symbols the last round refreshed."})
    last_round_at = Timestamp(allow_none=True,
                              metadata={"description": "When the last round ended."})


class FreshnessSchema(Schema):
    max_age_seconds = fields.Integer(
        metadata={"description": "No quote older than this is served as fresh."})
    bound_held_seconds = fields.Integer(metadata={
        "description": "The age the plan keeps hot quotes within at best, all day: refresh"
                       " rounds as often as the credits beyond the request reserve allow."})
    holds_max_age = fields.Boolean(metadata={
        "description": "False when the plan is too small for the max age: hot quotes are then"
                       " refreshed less often and served marked stale in between."})


class UsageSchema(Schema):
    plan = fields.Nested(PlanSchema)
    today = fields.Nested(TodaySchema)
    minute = fields.Nested(MinuteSchema)
    blocked = fields.Nested(BlockedSchema, allow_none=True,
                            metadata={"description": "CoinMarketCap's verdict in force, if any."})
    refresh = fields.Nested(RefreshSchema)
    freshness = fields.Nested(FreshnessSchema)
