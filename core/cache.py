"""The default cache: Django's database cache, shared by every gunicorn worker, with an atomic counter.

Why the database by default: rate-limit counters must be seen by every worker process (local memory is one
copy per process, so with 2 workers a limit would let through twice as much, and a different amount each
time), and by the reconciliation job; the file cache is shared on one machine only when every process sees the
same folder (not true of containers with their own /tmp) and its increments are not atomic either. The
database is already shared, needs no new service, and one row lock makes an increment atomic. Several app
servers share Redis instead (`REDIS_URL`), whose INCR is atomic by itself.

Django's own `DatabaseCache.incr` is a read then a write: two requests at the same moment both read 4 and both
write 5, so a burst of parallel requests would slip past a limit. `incr_or_add` counts under a row lock
(SELECT ... FOR UPDATE on PostgreSQL; SQLite's write lock, which the settings take at BEGIN) and creates the
counter with its expiry in the same step: two queries per count.

The table is created by `migrate` (see `core.apps`), and expired rows are deleted by
`manage.py clear_expired_cache` in the scheduled job (deploy/systemd/shop-reconcile.service).
"""

from __future__ import annotations

import base64
import pickle
from datetime import timedelta
from typing import Any

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone


class DatabaseCache(DjangoDatabaseCache):
    _table: str  # set by BaseDatabaseCache.__init__ (not in the stubs)

    def _encode(self, value: Any) -> str:
        return base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")

    def _decode(self, value: str) -> Any:
        return pickle.loads(base64.b64decode(value.encode()))  # noqa: S301 (our own rows, as Django does)

    def incr_or_add(self, key: str, timeout: int, delta: int = 1, version: int | None = None) -> int:
        """Add `delta` to the counter `key` and return its new value; a missing or expired counter starts
        from 0 and expires `timeout` seconds from now. Atomic across threads and processes."""
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        qn = connection.ops.quote_name
        table = qn(self._table)
        now = timezone.now().replace(microsecond=0)
        adapt = connection.ops.adapt_datetimefield_value
        expires = adapt(now + timedelta(seconds=timeout))
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        select = (
            f"SELECT {qn('value')}, CASE WHEN {qn('expires')} > %s THEN 1 ELSE 0 END "  # noqa: S608
            f"FROM {table} WHERE {qn('cache_key')} = %s{lock}"
        )
        for attempt in range(2):
            try:
                with transaction.atomic(using=db), connection.cursor() as cursor:
                    cursor.execute(select, [adapt(now), key])
                    row = cursor.fetchone()
                    if row is None:
                        value = delta
                        cursor.execute(
                            f"INSERT INTO {table} ({qn('cache_key')}, {qn('value')}, {qn('expires')}) "  # noqa: S608
                            "VALUES (%s, %s, %s)",
                            [key, self._encode(value), expires],
                        )
                    elif row[1]:  # live: count on
                        value = int(self._decode(connection.ops.process_clob(row[0]))) + delta
                        cursor.execute(
                            f"UPDATE {table} SET {qn('value')} = %s WHERE {qn('cache_key')} = %s",  # noqa: S608
                            [self._encode(value), key],
                        )
                    else:  # expired: start again
                        value = delta
                        cursor.execute(
                            f"UPDATE {table} SET {qn('value')} = %s, {qn('expires')} = %s "  # noqa: S608
                            f"WHERE {qn('cache_key')} = %s",
                            [self._encode(value), expires, key],
                        )
                return value
            except IntegrityError:
                # Another process inserted the same new counter first: count on its row.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def delete_expired(self) -> int:
        """Delete expired rows (Django only culls when the table is over MAX_ENTRIES); how many went."""
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {qn(self._table)} WHERE {qn('expires')} < %s",  # noqa: S608
                [connection.ops.adapt_datetimefield_value(timezone.now().replace(microsecond=0))],
            )
            return int(cursor.rowcount)
