"""The SQLAlchemy tables (the only ones) and the Flask-SQLAlchemy handle `db`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    types,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ExactDecimal(types.TypeDecorator):
    """An exact decimal: NUMERIC (unbounded) on PostgreSQL, text on SQLite.

    SQLite has no decimal type and would store a float, which drifts; text keeps every digit.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):  # noqa: D401 - SQLAlchemy hook
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


class UTCDateTime(types.TypeDecorator):
    """A timezone-aware UTC timestamp on every dialect (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Named constraints keep Alembic migrations deterministic across databases.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)


class CoinRow(db.Model):  # type: ignore[name-defined]
    """A coin, keyed by its permanent CoinMarketCap id; metadata as of its newest fetch."""

    __tablename__ = "coins"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    symbol: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255))
    date_added: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuoteRow(db.Model):  # type: ignore[name-defined]
    """One provider fetch of one coin in one currency: append-only history."""

    __tablename__ = "quotes"
    __table_args__ = (
        Index("ix_quotes_lookup", "lookup_symbol", "currency", "fetched_at"),
        # A coin's history in a time range (GET /api/v1/quotes/history, history prune).
        Index("ix_quotes_coin_history", "coin_id", "currency", "fetched_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # Indexed by ix_quotes_coin_history, whose leading column it is.
    coin_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("coins.id"))
    # The symbol as requested (normalised): symbols are not unique, so this records which coin
    # answered that symbol at fetch time.
    lookup_symbol: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(32))
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Coin figures that change over time, as of this fetch.
    cmc_rank: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean)
    num_market_pairs: Mapped[int | None] = mapped_column(Integer)
    circulating_supply: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    total_supply: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    max_supply: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    coin_last_updated: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The quote in `currency`.
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    volume_24h: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    volume_change_24h: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    market_cap: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    market_cap_dominance: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    fully_diluted_market_cap: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_1h: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_24h: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_7d: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_30d: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_60d: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent_change_90d: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    quote_last_updated: Mapped[datetime] = mapped_column(UTCDateTime())


class RequestedSymbolRow(db.Model):  # type: ignore[name-defined]
    """A symbol clients asked for and when last: what the refresher keeps fresh."""

    __tablename__ = "requested_symbols"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class RefreshLeaseRow(db.Model):  # type: ignore[name-defined]
    """One row per lease name: who runs the current refresh round, and what the last one did.

    Also the once-a-day claims of daily jobs (name "daily:<job>", only `round_started_at` used).
    """

    __tablename__ = "refresh_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    round_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_symbols: Mapped[int | None] = mapped_column(Integer)
    last_refreshed: Mapped[int | None] = mapped_column(Integer)
    last_calls: Mapped[int | None] = mapped_column(Integer)
    last_stopped: Mapped[str | None] = mapped_column(String(32))


class BudgetCounterRow(db.Model):  # type: ignore[name-defined]
    """A credit-governor counter or note shared by every process of a deployment
    (src/adapters/sql/budget_board.py): live until `expires_at` (Unix seconds)."""

    __tablename__ = "budget_counters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float(precision=53))
