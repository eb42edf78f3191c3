"""`flask --app wsgi history prune`: thin stored history by the retention policy."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from src.domain.errors import StorageError
from src.entrypoints.wiring import wiring

history = AppGroup("history", help="The stored price history.")


@history.command("prune")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows deleted per short transaction.")
def prune(batch_size: int) -> None:
    """Keep every fetch for HISTORY_FULL_DAYS, then the newest per coin and hour up to
    HISTORY_HOURLY_DAYS, then the newest per coin and day. Safe to run again at any time."""
    service = wiring().history
    try:
        report = service.prune(batch_size)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"history pruned: {report.deleted_hourly} rows thinned to one per hour (older than"
        f" {service.policy.full_days} days), {report.deleted_daily} to one per day (older than"
        f" {service.policy.hourly_days} days), in {report.batches} batches"
    )
