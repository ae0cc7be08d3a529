"""The outbox's tables, sequence and commit trigger, as SQL (pure: no driver, no I/O).

:func:`schema_sql` is what the consumer runs when it starts (under an
advisory lock, so several processes starting at once do not race) and what
``tornado-channels outbox-schema`` prints for those who run their own
migrations.  Every statement is idempotent.

Why a trigger and a second number: a ``bigserial`` id is taken when a row is
inserted, not when its transaction commits, so ids do not follow commit
order.  A consumer that reads "every id above the last one" skips a row whose
transaction took its id first and committed last.  Here a constraint trigger,
deferred to commit time, takes a transaction-level advisory lock and numbers
the row from a second sequence (``seq``).  The lock is released only once
the commit is visible, so the next transaction to number rows waits until
then: ``seq`` order is commit order, and when a reader sees a row it sees
every row with a lower ``seq``.  Rows still being committed have no ``seq``
yet (and are invisible to other transactions anyway).
"""

from __future__ import annotations

import hashlib
import re

#: The table applications insert into unless told otherwise.
DEFAULT_TABLE = "tornado_channels_outbox"

# A plain lower-case identifier, short enough for every suffix below to fit
# PostgreSQL's 63-byte names: never quoted, never spliced from user input unchecked.
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,49}$")


def check_table(table: str) -> str:
    """``table`` if it is a valid outbox table name; raise ValueError otherwise."""
    if not _TABLE.match(table):
        raise ValueError(
            f"outbox table {table!r}: 1 to 50 lower-case letters, digits and '_', "
            "not starting with a digit"
        )
    return table


def lock_key(table: str, purpose: str) -> int:
    """A signed 64-bit advisory lock key of ``table`` for ``purpose`` (commit, consume, schema).

    Derived from the names, so every process (and the trigger) agrees on it
    without a registry, and two tables' locks never meet.
    """
    digest = hashlib.blake2b(f"{table}:{purpose}".encode(), digest_size=8, person=b"tc-outbox")
    return int.from_bytes(digest.digest(), "big", signed=True)


def rejected_table(table: str) -> str:
    """Where rows naming an invalid channel are moved, with the reason."""
    return f"{table}_rejected"


def state_table(table: str) -> str:
    """The one-row table holding the batch being published, for a successor to replay."""
    return f"{table}_state"


def schema_sql(table: str = DEFAULT_TABLE) -> str:
    """The DDL of outbox ``table``: idempotent statements, ``;``-separated."""
    t = check_table(table)
    commit_lock = lock_key(t, "commit")
    return f"""\
CREATE TABLE IF NOT EXISTS {t} (
    id bigserial PRIMARY KEY,
    channel text NOT NULL,
    data bytea NOT NULL,
    -- Commit order, set by the trigger at commit time; NULL until then.
    seq bigint,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Not owned by the table: dropping the table never restarts it, so a number
-- (and the idempotency key made from it) is never used twice.
CREATE SEQUENCE IF NOT EXISTS {t}_commit_seq;
CREATE UNIQUE INDEX IF NOT EXISTS {t}_seq_idx ON {t} (seq);
CREATE TABLE IF NOT EXISTS {rejected_table(t)} (
    id bigint NOT NULL,
    seq bigint NOT NULL,
    channel text NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {state_table(t)} (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    first_seq bigint,
    last_seq bigint
);
INSERT INTO {state_table(t)} (single) VALUES (true) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {t}_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until the commit is visible: seq order is commit order.
    PERFORM pg_advisory_xact_lock({commit_lock});
    UPDATE {t} SET seq = nextval('{t}_commit_seq') WHERE id = NEW.id;
    PERFORM pg_notify('{t}', '');
    RETURN NULL;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = '{t}_number' AND tgrelid = '{t}'::regclass
    ) THEN
        CREATE CONSTRAINT TRIGGER {t}_number AFTER INSERT ON {t}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {t}_number();
    END IF;
END
$$;
"""


def insert_sql(table: str = DEFAULT_TABLE) -> str:
    """The parameterized INSERT of one row (``%s`` placeholders: psycopg, psycopg2, Django)."""
    return f"INSERT INTO {check_table(table)} (channel, data) VALUES (%s, %s)"
