"""Request logs partitioned by UTC day on PostgreSQL (SQLite keeps one table).

`request_logs` becomes a table partitioned by RANGE (created_at): one partition per UTC day named
`request_logs_pYYYYMMDD`, and `request_logs_default` for rows no daily partition covers (the
partition job moves them out, see services/partitions.py). The primary key becomes
(id, created_at), since a partitioned table's unique keys must hold the partition key; ids keep
coming from the same sequence, so they keep increasing.

Existing rows are copied into a daily partition per day they cover (found with one index probe
per day, so sparse history makes no empty partitions), in this one transaction, with writers of
older instances held off by a lock while readers go on. The copy goes in slices of `CHUNK` ids:
migrations run on the gateway's engine, whose statements time out after 30 s, so no statement
here grows with the table. It rewrites the table once; the README gives the rate measured.

Revision ID: 0006
Revises: 0005
"""

from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DAYS_AHEAD = 3  # as `ensure_partitions` makes at start and every hour
CHUNK = 50_000  # ids copied per statement
INDEXES = {
    "ix_request_logs_created_at": "created_at",
    "ix_request_logs_user_key_created_at": "user_key_id, created_at",
    "ix_request_logs_model_created_at": "model_requested, created_at",
    "ix_request_logs_endpoint_created_at": "endpoint, created_at",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or _is_partitioned(bind):
        return
    _run(bind, "LOCK TABLE request_logs IN EXCLUSIVE MODE")
    today = datetime.now(UTC).date()
    days = set(_days_with_rows(bind)) | {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
    _run(bind, f"CREATE TABLE request_logs_partitioned {_LIKE} PARTITION BY RANGE (created_at)")
    for day in sorted(days):
        lower, upper = _bound(day), _bound(day + timedelta(days=1))
        _run(
            bind,
            f"CREATE TABLE request_logs_p{day:%Y%m%d} PARTITION OF request_logs_partitioned"
            f" FOR VALUES FROM ('{lower}') TO ('{upper}')",
        )
    _run(bind, "CREATE TABLE request_logs_default PARTITION OF request_logs_partitioned DEFAULT")
    _copy(bind, "request_logs_partitioned", "id, created_at")


def downgrade() -> None:
    """Back to one table: every partition's rows copied into it, the same ids."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _is_partitioned(bind):
        return
    _run(bind, "LOCK TABLE request_logs IN EXCLUSIVE MODE")
    _run(bind, f"CREATE TABLE request_logs_single {_LIKE}")
    _copy(bind, "request_logs_single", "id")


_LIKE = "(LIKE request_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"


def _copy(bind: Connection, new: str, primary_key: str) -> None:
    """Fill `new` from request_logs and put it in its place: the indexes move over first (their
    names are free once the old ones are dropped), the rows follow in slices of ids, then the id
    sequence (so dropping the old table keeps it) and the name."""
    for name in INDEXES:
        _run(bind, f"DROP INDEX {name}")
    _run(bind, f"ALTER TABLE {new} ADD CONSTRAINT {new}_pkey PRIMARY KEY ({primary_key})")
    for name, columns in INDEXES.items():
        _run(bind, f"CREATE INDEX {name} ON {new} ({columns})")
    lowest, highest = bind.execute(sa.text("SELECT min(id), max(id) FROM request_logs")).one()
    if lowest is not None:
        for start in range(lowest, highest + 1, CHUNK):
            bind.execute(
                sa.text(
                    f"INSERT INTO {new} SELECT * FROM request_logs"  # noqa: S608
                    " WHERE id >= :start AND id < :end"
                ),
                {"start": start, "end": start + CHUNK},
            )
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('request_logs', 'id')"))
    _run(bind, f"ALTER SEQUENCE {sequence} OWNED BY {new}.id")
    _run(bind, "DROP TABLE request_logs")
    _run(bind, f"ALTER TABLE {new} RENAME TO request_logs")
    _run(bind, f"ALTER TABLE request_logs RENAME CONSTRAINT {new}_pkey TO request_logs_pkey")
    tables = bind.scalars(
        sa.text(
            "SELECT inhrelid::regclass::text FROM pg_inherits"
            " WHERE inhparent = 'request_logs'::regclass"
        )
    ).all()
    for table in tables or ["request_logs"]:  # each partition: one statement each
        _run(bind, f"ANALYZE {table}")


def _is_partitioned(bind: Connection) -> bool:
    query = "SELECT relkind = 'p' FROM pg_class WHERE oid = 'request_logs'::regclass"
    return bool(bind.scalar(sa.text(query)))


def _days_with_rows(bind: Connection) -> list[date]:
    """The UTC days that have rows, oldest first: one probe of the created_at index per day."""
    days: list[date] = []
    after: datetime | None = None
    while True:
        query = "SELECT min(created_at) FROM request_logs"
        found = bind.scalar(
            sa.text(query if after is None else query + " WHERE created_at >= :after"),
            {} if after is None else {"after": after},
        )
        if found is None:
            return days
        day = found.astimezone(UTC).date()
        days.append(day)
        after = datetime.combine(day + timedelta(days=1), time(), UTC)


def _bound(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def _run(bind: Connection, statement: str) -> None:
    # Statements built only from fixed names and dates; no value comes from outside.
    bind.exec_driver_sql(statement)
