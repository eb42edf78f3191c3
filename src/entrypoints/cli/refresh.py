"""`flask --app wsgi refresh [--once]`: the refresher process (README "Refresh-ahead")."""

from __future__ import annotations

import logging
import signal
import threading

import click
from flask.cli import with_appcontext

from src.domain.errors import StorageError
from src.entrypoints.wiring import wiring

logger = logging.getLogger(__name__)


@click.command("refresh")
@click.option("--once", is_flag=True,
              help="Run one round now (unless another refresher is in one) and exit.")
@with_appcontext
def refresh(once: bool) -> None:
    """Keep every symbol requested within REFRESH_WINDOW_SECONDS fresh, round after round.

    Any number may run (one per replica): a lease in the database lets exactly one do each
    round. Stops cleanly on SIGTERM or Ctrl-C, after the round under way. Also thins the
    stored history once a day (`history prune`).
    """
    refresher = wiring().refresh.refresher
    if refresher is None:
        raise click.ClickException(
            "refresh-ahead needs the database (DATABASE_URL) and a credit governor")
    if refresher.policy.window_seconds <= 0:
        click.echo("refresh-ahead is off (REFRESH_WINDOW_SECONDS=0);"
                   " only the daily history pruning runs")
    if once:
        try:
            done = refresher.run_round(due_now=True)
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        if done is None:
            click.echo("no round: refresh-ahead is off, or another refresher is in a round")
        else:
            stopped = f", stopped: {done.stopped}" if done.stopped else ""
            click.echo(f"refresh round: {done.refreshed} of {done.symbols} symbol(s) refreshed in"
                       f" {done.calls} call(s){stopped}")
        return
    stop = threading.Event()

    def stop_after_this_round(signum: int, frame: object) -> None:
        logger.info("refresher: stopping (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, stop_after_this_round)
    signal.signal(signal.SIGINT, stop_after_this_round)
    logger.info("refresher %s: window %d s, interval %s", refresher.holder,
                refresher.policy.window_seconds,
                f"{refresher.policy.interval_seconds} s" if refresher.policy.interval_seconds
                else "from the credit budget")
    refresher.run(stop)
