"""A real database outage inside a test: the default connection pointed at a server that is not there."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens there once the socket is closed


@contextmanager
def database_down(alias: str = "default") -> Iterator[None]:
    """Until the block ends, every new connection fails as after a crash or a network cut: PostgreSQL on a
    closed port ("connection refused"), SQLite on a path that cannot be opened. The current connection is
    closed first, so the next query really connects (as CONN_HEALTH_CHECKS makes a request do); with
    PostgreSQL's connection pool, a pool is made for the outage (waiting 1 s for a connection, then failing as a
    pool does) and another after it. Use it in `transaction=True` tests: a test wrapped in a transaction would
    lose it."""
    connection = connections[alias]
    saved = copy.deepcopy(connection.settings_dict)
    connection.close()
    pooled = connection.vendor == "postgresql" and bool(connection.settings_dict["OPTIONS"].get("pool"))
    if pooled:  # the pool keeps the parameters it was made with: a new one is made for the outage, and after
        connection.close_pool()  # type: ignore[attr-defined]
        connection.settings_dict["OPTIONS"]["pool"] = {**saved["OPTIONS"]["pool"], "timeout": 1.0}
    if connection.vendor == "postgresql":
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": closed_port()})
    else:
        connection.settings_dict["NAME"] = "/nonexistent-shop-database-dir/db.sqlite3"
    try:
        yield
    finally:
        connection.close()
        if pooled:
            connection.close_pool()  # type: ignore[attr-defined]
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
