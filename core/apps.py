from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_cache_table(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """`migrate` also creates the database cache's table (`createcachetable` skips what exists), so that no
    deployment step can forget it. Runs once per migrate: after the sessions app, which every install has."""
    if sender.label != "sessions":
        return
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shop core"

    def ready(self) -> None:
        from core import checks  # noqa: F401  (registers the site's system checks)

        post_migrate.connect(create_cache_table, dispatch_uid="core.create_cache_table")
