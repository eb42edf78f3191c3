"""The one guard of every SQL adapter: a driver error becomes StorageError, counted in metrics.

The domain knows nothing of SQLAlchemy: what reaches it is StorageError (the error table maps it
to a 503), with the driver's error type in the message and never its text (which may quote
values). `rollback_quietly` ends a session's transaction when the connection may be gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from src.adapters.metrics import DATABASE_ERRORS
from src.domain.errors import StorageError

logger = logging.getLogger(__name__)


@contextmanager
def storage_errors(failed: str, kind: str, *, also: tuple[type[Exception], ...] = (),
                   cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Raise StorageError("<failed> (<error type>)") for a driver error (or one of `also`),
    counted under DATABASE_ERRORS[kind] after `cleanup` (a rollback) has run."""
    caught: tuple[type[Exception], ...] = (SQLAlchemyError, *also)
    try:
        yield
    except caught as exc:
        DATABASE_ERRORS.labels(kind).inc()
        if cleanup is not None:
            cleanup()
        raise StorageError(f"{failed} ({type(exc).__name__})") from exc


# A session, or Flask-SQLAlchemy's scoped session standing for the current context's.
SessionLike = Session | scoped_session[Any]


def rollback_quietly(session: SessionLike) -> None:
    try:
        session.rollback()
    except SQLAlchemyError:  # the connection itself is gone; the pool will replace it
        logger.debug("rollback failed", exc_info=True)
