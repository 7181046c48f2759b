"""A task worker for the tests, in the test's own process.

In production, `manage.py db_worker` takes each task once the transaction that queued it has committed. Tests run
inside a transaction that never commits, so this worker stands in for an idle worker that picks a task up the
moment its transaction ends: when the outermost `atomic` block of the code under test exits (or at once, for a
task queued outside any), it runs every task that is ready, exactly as `db_worker` runs one (`Worker.run_task`:
the task's row claimed, its result recorded). Tests of the queue itself hold it (`held_queue`) and run it when
they choose (`run_tasks`), also tasks scheduled for later (a retry's backoff) with `include_later`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.signals import task_enqueued
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult


def run_tasks(*, include_later: bool = False, limit: int | None = None) -> int:
    """Run the queued tasks, oldest first, until none is ready (or, `include_later`, none is queued at all:
    each one runs as if its time had come), or `limit` ran; how many ran."""
    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )
    ran = 0
    while ran < (limit or SAFETY_CAP):
        queued = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        if not include_later:
            queued = queued.ready()
        task = queued.first()
        if task is None:
            return ran
        if task.run_after and task.run_after > timezone.now():
            DBTaskResult.objects.filter(pk=task.pk).update(run_after=timezone.now())
            task.refresh_from_db()
        task.claim(worker.worker_id)
        worker.run_task(task)
        ran += 1
    if limit is None:
        raise AssertionError(f"more than {SAFETY_CAP} tasks: a follow-up queues itself forever?")
    return ran


SAFETY_CAP = 1000


class InlineWorker:
    """Runs the ready tasks when the code that queued them has left its transactions (see the module doc)."""

    def __init__(self) -> None:
        self.eager = True
        self.pending = False
        self.running = False
        self.base_depth: dict[str, int] = {}

    def depth(self, using: str) -> int:
        return len(connections[using].atomic_blocks)

    def at_base(self, using: str) -> bool:
        return self.depth(using) <= self.base_depth.get(using, 0)

    def queued(self, **kwargs: Any) -> None:
        self.pending = True
        if self.at_base(DEFAULT_DB_ALIAS):
            self.drain()

    def drain(self) -> None:
        if not self.eager or self.running or not self.pending:
            return
        self.running = True
        try:
            while self.pending:
                self.pending = False
                run_tasks()
        finally:
            self.running = False


@contextmanager
def inline_worker(base_depth: int) -> Iterator[InlineWorker]:
    worker = InlineWorker()
    worker.base_depth[DEFAULT_DB_ALIAS] = base_depth
    original_exit = transaction.Atomic.__exit__

    def exit_then_run(self: transaction.Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original_exit(self, exc_type, exc_value, traceback)
        using = self.using or DEFAULT_DB_ALIAS
        if worker.pending and exc_type is None and worker.at_base(using):
            worker.drain()
        return result

    task_enqueued.connect(worker.queued, dispatch_uid="test-inline-worker")
    transaction.Atomic.__exit__ = exit_then_run  # type: ignore[method-assign]
    try:
        yield worker
    finally:
        transaction.Atomic.__exit__ = original_exit  # type: ignore[method-assign]
        task_enqueued.disconnect(dispatch_uid="test-inline-worker")
