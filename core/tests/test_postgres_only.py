"""The end of a SQLite test run says how many PostgreSQL-only tests were skipped and how to run them."""

from __future__ import annotations

import pytest

from core.tests.postgres_only import HOW_TO_RUN, summary_line


def skipped(nodeid: str, reason: str) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid, ("x.py", 1, nodeid), {}, "skipped", ("x.py", 3, f"Skipped: {reason}"), "setup"
    )


def test_the_postgresql_only_skips_are_counted_once_each() -> None:
    reports = [
        skipped(
            "a.py::test_lock", "needs PostgreSQL row locks and concurrent connections (database is sqlite)"
        ),
        skipped(
            "a.py::test_lock", "needs PostgreSQL row locks and concurrent connections (database is sqlite)"
        ),
        skipped("b.py::test_two", "two app processes need a server (run with DATABASE_URL=postgres://...)"),
        skipped("c.py::test_redis", "no Redis server at 127.0.0.1:6379"),
        skipped("d.py::test_po", "needs GNU gettext (apt-get install gettext)"),
    ]
    line = summary_line(reports)
    assert line is not None and line.startswith("2 PostgreSQL-only tests skipped")
    assert HOW_TO_RUN in line and "\n" not in line


def test_no_line_when_nothing_was_skipped_for_postgresql() -> None:
    assert summary_line([skipped("c.py::test_redis", "no Redis server at 127.0.0.1:6379")]) is None


def test_the_run_ends_with_the_line(pytestconfig: pytest.Config) -> None:
    """The hook is the root conftest's."""
    hooks = [
        impl.plugin_name for impl in pytestconfig.pluginmanager.hook.pytest_terminal_summary.get_hookimpls()
    ]
    assert any(name.endswith("conftest.py") for name in hooks), hooks
