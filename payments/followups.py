"""Work that follows a payment's news, done by workers from a queue in the shop's own database.

A webhook, a return page or a sweep learns news (a payment succeeded, a refund was made, an event waits for its
object) and writes the state move under the order's lock: that is quick, and it is what makes a duplicate a
duplicate. What must follow at Stripe or by mail is **enqueued in the same transaction** as the news, as a
`FollowUp` row and a task of Django's tasks API (`django_tasks_db`, the ORM backend): an event stored is its
work queued, with no second system to lose it. Workers (`manage.py db_worker`, any number, on any machine) take
the tasks; a worker that dies mid-task leaves its follow-up running, and the sweep hands it to another.

The kinds of follow-up (each idempotent: it reads the state as it is when it runs, and does what is still owed):

- `tidy_order`: close the order's objects it no longer needs at Stripe, send the refunds it owes, look up
  refunds Stripe reported that the shop cannot explain (`sync.tidy_up`);
- `confirmation`, `refund_notice`: the emails, each sent once (`receipts`, stamped; a stable `Message-ID`);
- `pending_event`: an event whose object was not known yet, processed again.

A follow-up that fails (Stripe down, SMTP refusing, an order locked) is tried again with a growing delay
(`BACKOFF_SECONDS`), its attempts and last error recorded and shown to staff in the admin (Payments > Follow-ups);
after `MAX_ATTEMPTS` it stays failed for the sweep to start again. At most one follow-up of a kind and object is
queued at a time: news arriving while one is queued needs nothing more (it reads the state when it runs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks import task

from payments.models import FollowUp

logger = logging.getLogger("payments.followups")

# The delay before attempt n + 1 (n attempts made): 10 s, 30 s, 90 s, ... at most an hour.
BACKOFF_SECONDS = (10, 30, 90, 300, 900, 1800, 3600)
MAX_ATTEMPTS = 8


def stuck_after() -> timedelta:
    """A follow-up running for longer than this was left by a worker that died: the sweep queues it again
    (FOLLOWUP_STUCK_AFTER seconds, 10 minutes by default: longer than any follow-up takes)."""
    return timedelta(seconds=settings.FOLLOWUP_STUCK_AFTER)


class Incomplete(Exception):
    """A follow-up ran but something is still owed (Stripe or the mail server did not answer): try again."""


def enqueue(
    kind: str, *, order_id: int | None = None, target_id: int | None = None, delay: float = 0
) -> None:
    """Queue a follow-up in the caller's transaction (committed with the news that calls for it). One already
    queued for the same kind and object is enough: it reads the state when it runs (if it waits out a retry's
    backoff, it is brought forward)."""
    key = f"{kind}:{target_id if target_id is not None else order_id}"
    run_after = timezone.now() + timedelta(seconds=delay)
    try:  # the usual case first: none is queued (one statement, no look-up before it)
        with transaction.atomic():
            row = FollowUp.objects.create(
                key=key, kind=kind, order_id=order_id, target_id=target_id, run_after=run_after
            )
    except IntegrityError:  # one is queued already (or another transaction queued it meanwhile)
        waiting = FollowUp.objects.filter(key=key, status=FollowUp.Status.QUEUED).first()
        if waiting is not None and waiting.run_after > run_after:
            # A retry waiting out its backoff: news (or the sweep) brings it forward.
            FollowUp.objects.filter(pk=waiting.pk, status=FollowUp.Status.QUEUED).update(run_after=run_after)
            waiting.run_after = run_after
            _schedule(waiting)
        return
    _schedule(row)


def _schedule(row: FollowUp) -> None:
    task_result = run_followup.using(run_after=row.run_after).enqueue(row.pk)
    FollowUp.objects.filter(pk=row.pk).update(task_id=str(task_result.id))


@task()
def run_followup(followup_id: int) -> str:
    """The task a worker runs: claim the follow-up (only one worker runs it), do its work, record the outcome;
    a failure schedules the next attempt after its backoff."""
    claimed = FollowUp.objects.filter(pk=followup_id, status=FollowUp.Status.QUEUED).update(
        status=FollowUp.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return "not queued"  # done, running elsewhere, or queued again under another task
    row = FollowUp.objects.get(pk=followup_id)
    row.attempts += 1
    try:
        row.result = HANDLERS[row.kind](row)[:2000]
    except Exception as exc:
        row.last_error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.status = FollowUp.Status.FAILED
            row.save(update_fields=["status", "attempts", "last_error", "updated_at"])
            logger.error(
                "follow-up %s failed for good after %s attempts: %s", row.key, row.attempts, row.last_error
            )
            return "failed"
        delay = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS)) - 1]
        row.status, row.run_after = FollowUp.Status.QUEUED, timezone.now() + timedelta(seconds=delay)
        try:
            with transaction.atomic():
                row.save(update_fields=["status", "attempts", "last_error", "run_after", "updated_at"])
        except IntegrityError:  # news queued the same work meanwhile: that one will do it
            FollowUp.objects.filter(pk=row.pk).update(status=FollowUp.Status.DONE, done_at=timezone.now())
            return "superseded"
        _schedule(row)
        logger.warning(
            "follow-up %s attempt %s failed, again in %ss: %s", row.key, row.attempts, delay, row.last_error
        )
        return "retry"
    row.status, row.done_at, row.last_error = FollowUp.Status.DONE, timezone.now(), ""
    row.save(update_fields=["status", "attempts", "last_error", "result", "done_at", "updated_at"])
    return "done"


def requeue_stuck() -> int:
    """Follow-ups a dead worker left running, and failed ones, queued again (the sweep's part); how many."""
    now = timezone.now()
    stuck = FollowUp.objects.filter(status=FollowUp.Status.RUNNING, started_at__lt=now - stuck_after())
    failed = FollowUp.objects.filter(status=FollowUp.Status.FAILED)
    count = 0
    for row in [*stuck, *failed]:
        try:
            with transaction.atomic():
                updated = FollowUp.objects.filter(pk=row.pk, status=row.status).update(
                    status=FollowUp.Status.QUEUED,
                    run_after=now,
                    attempts=0 if row.status == "failed" else row.attempts,
                )
        except IntegrityError:  # one is queued already for the same work
            FollowUp.objects.filter(pk=row.pk).update(status=FollowUp.Status.DONE, done_at=now)
            continue
        if updated:
            row.refresh_from_db()
            _schedule(row)
            count += 1
    return count


# ------------------------------------------------------------------------------------------------ the work
# Each kind's work is registered by the module that owns it (`sync`, `receipts`, `webhooks`), so that this module
# knows the queue and nothing of the work; `payments.apps` imports them when Django starts (workers included).

Handler = Callable[[FollowUp], str]  # returns what it did, in words (kept as the follow-up's result)
HANDLERS: dict[str, Handler] = {}


def handles(kind: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register
