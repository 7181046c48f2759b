"""The line `make test` ends with on SQLite: how many PostgreSQL-only tests it skipped, and how to run them.

A PostgreSQL-only test skips itself with a reason that names PostgreSQL or `DATABASE_URL=postgres`
(`payments.tests.support.require_postgres` and the like); the root conftest's `pytest_terminal_summary` counts
those skips."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

POSTGRES_ONLY = re.compile(r"PostgreSQL|DATABASE_URL=postgres")
HOW_TO_RUN = "DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop make test"


def skip_reason(report: Any) -> str:
    """Why a skipped test was skipped (its longrepr is `(path, line, "Skipped: reason")`)."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def summary_line(skipped: Iterable[Any]) -> str | None:
    """One line for the PostgreSQL-only tests among these skipped reports (None when there are none)."""
    tests = {report.nodeid for report in skipped if POSTGRES_ONLY.search(skip_reason(report))}
    if not tests:
        return None
    count = f"{len(tests)} PostgreSQL-only test{'' if len(tests) == 1 else 's'}"
    return f"{count} skipped (locks and concurrency); run them with: {HOW_TO_RUN}"
