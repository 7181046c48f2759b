"""`manage.py clear_expired_cache`: delete the expired rows of the database cache (rate-limit counters).

Django's database cache deletes expired rows only when the table grows past MAX_ENTRIES; the scheduled job
(deploy/systemd/shop-reconcile.service, compose's `reconcile` service) runs this next to `clearsessions`.
Caches of other kinds (Redis expires its keys itself) are left alone.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.management.base import BaseCommand

from core.cache import DatabaseCache


class Command(BaseCommand):
    help = "Delete the expired entries of the database cache (Redis and other caches expire keys themselves)."

    def handle(self, *args: Any, **options: Any) -> None:
        for alias in caches:
            cache = caches[alias]
            if isinstance(cache, DatabaseCache):
                deleted = cache.delete_expired()
                self.stdout.write(f"cache {alias}: {deleted} expired entries deleted")
            else:
                self.stdout.write(f"cache {alias}: {type(cache).__name__} expires its own entries")
