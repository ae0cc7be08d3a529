"""The outbox consumer's settings, each declared once (see core/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import setting
from .schema import DEFAULT_TABLE


@dataclass(frozen=True)
class OutboxSettings:
    """Where the outbox is, and how often the consumer looks when no NOTIFY wakes it."""

    outbox_dsn: str | None = setting(
        None,
        "PostgreSQL to consume a transactional outbox from (postgresql://...); "
        "requires the [outbox] extra (docs/outbox.md)",
        shown="(off)",
        metavar="DSN",
    )
    outbox_table: str = setting(
        DEFAULT_TABLE,
        "the outbox table (created when missing, with TABLE_rejected and TABLE_state)",
        metavar="TABLE",
    )
    outbox_poll_interval: float = setting(
        5.0,
        "seconds between looks at the outbox when no NOTIFY arrives, and between a standby "
        "process's attempts to become the consumer",
        metavar="SECONDS",
    )
    outbox_batch_size: int = setting(
        500, "rows read, published and deleted together", metavar="ROWS"
    )
