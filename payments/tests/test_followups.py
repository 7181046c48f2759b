"""Work after the news runs in workers: a webhook verifies, stores, moves the state and answers, and what needs
Stripe or the mail server is a follow-up in the database's queue, done by a task worker with retries, once.

These tests hold the queue (`held_queue`), so that they see what a request left for the workers, and run the
workers themselves (`run_tasks`, or the real `db_worker` loop from several threads on PostgreSQL)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker

from catalog.models import Item
from deploy.tests.live import SmtpRelay
from payments import followups, freezing
from payments.models import FollowUp, Order, OrderStatus, Payment, StripeEvent
from payments.tests.support import (
    JSON,
    Shopper,
    make_event,
    payable_at_stripe,
    require_postgres,
    run_together,
)
from payments.tests.worker import run_tasks

pytestmark = pytest.mark.django_db


def reconcile() -> None:
    call_command("reconcile_payments", "--older-than", "0", stdout=io.StringIO(), stderr=io.StringIO())


def paid_with_a_second_object_open(
    stripe_fake: Any, item: Item, email: str = "ada@example.com"
) -> tuple[Order, str]:
    """An item bought with the card form while a Checkout Session of the same order stays open (as if closing it
    had been skipped): once paid, the session is the work left to close."""
    shopper = Shopper()
    session = shopper.web.get(f"/buy/{item.pk}", **JSON).json()["id"]
    answer = shopper.web.post(f"/item/{item.pk}/intent", {"receipt_email": email}, **JSON).json()
    pi = answer["client_secret"].split("_secret_")[0]
    # Reopen the session at Stripe: the Pay above closed it; here it is what a worker must close.
    stripe_fake.emulator.objects[session]["status"] = "open"
    Payment.objects.filter(stripe_id=session).update(status="open", url="https://checkout.example/x")
    stripe_fake.outbox.clear()
    stripe_fake.emulator.confirm_payment_intent(pi)
    return Order.objects.get(public_id=answer["order_id"]), session


def test_the_webhook_moves_the_state_and_leaves_stripe_and_mail_to_a_worker(
    usd_item: Item, stripe_fake: Any, held_queue: Any
) -> None:
    order, session = paid_with_a_second_object_open(stripe_fake, usd_item)
    statuses = stripe_fake.deliver_webhooks()
    assert set(statuses) == {200}
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID  # the state move: in the request
    assert stripe_fake.emulator.get(session)["status"] == "open" and mail.outbox == []  # not yet: a worker's
    queued = dict(FollowUp.objects.filter(status="queued").values_list("kind", "order_id"))
    assert queued == {"tidy_order": order.pk, "confirmation": order.pk}

    assert run_tasks() == 2
    assert stripe_fake.emulator.get(session)["status"] == "expired"
    [email] = mail.outbox
    assert email.to == ["ada@example.com"] and email.extra_headers["Message-ID"] == (
        f"<confirmation.{order.public_id}@testserver>"
    )
    done = {row.kind: row for row in FollowUp.objects.all()}
    assert {row.status for row in done.values()} == {"done"} and {row.attempts for row in done.values()} == {
        1
    }
    assert done["confirmation"].result  # what the mail backend answered
    # The same news again queues the tidy-up again (harmless), never a second email.
    stripe_fake.deliver_webhooks()
    reconcile()
    run_tasks()
    assert len(mail.outbox) == 1


def test_stripe_down_the_follow_up_is_retried_with_backoff_and_recorded(
    usd_item: Item, stripe_fake: Any, held_queue: Any, admin_client: Client
) -> None:
    order, session = paid_with_a_second_object_open(stripe_fake, usd_item)
    stripe_fake.deliver_webhooks()
    stripe_fake.client.fail_next("connection", times=100)
    run_tasks()
    tidy = FollowUp.objects.get(kind="tidy_order")
    assert (tidy.status, tidy.attempts) == ("queued", 1)
    assert "not closed yet" in tidy.last_error and tidy.run_after > timezone.now() + timedelta(seconds=5)
    assert stripe_fake.emulator.get(session)["status"] == "open"
    page = admin_client.get("/admin/payments/followup/").content.decode()
    assert "not closed yet" in page and "Queued" in page
    run_tasks(include_later=True, limit=3)  # Stripe still down: backoff grows
    tidy.refresh_from_db()
    assert tidy.attempts >= 2 and tidy.status == "queued"
    stripe_fake.recover()
    run_tasks(include_later=True)
    tidy.refresh_from_db()
    assert tidy.status == "done" and tidy.last_error == ""
    assert stripe_fake.emulator.get(session)["status"] == "expired"
    assert payable_at_stripe(stripe_fake, order) == []


def test_a_follow_up_a_dead_worker_left_running_is_started_again_by_the_sweep(
    usd_item: Item, stripe_fake: Any, held_queue: Any
) -> None:
    order, _ = paid_with_a_second_object_open(stripe_fake, usd_item)
    stripe_fake.deliver_webhooks()
    confirmation = FollowUp.objects.get(kind="confirmation")
    # A worker claimed it, stamped the claim, and died before the email left.
    FollowUp.objects.filter(pk=confirmation.pk).update(
        status="running", started_at=timezone.now() - timedelta(minutes=30)
    )
    stamp = timezone.now() - timedelta(minutes=30)
    Order.objects.filter(pk=order.pk).update(confirmation_sent_at=stamp)
    FollowUp.objects.filter(pk=confirmation.pk).update(result=f"claimed {stamp.isoformat()}")
    run_tasks()
    assert mail.outbox == []  # nothing to run: it is "running"
    reconcile()  # the sweep starts it again
    run_tasks()
    confirmation.refresh_from_db()
    assert confirmation.status == "done" and len(mail.outbox) == 1  # its own claim found: sent, once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_run_one_task_twice(usd_item: Item, stripe_fake: Any, held_queue: Any) -> None:
    require_postgres()
    orders = []
    for n in range(12):
        web = Shopper()
        answer = web.web.post(f"/item/{usd_item.pk}/intent", {"receipt_email": f"b{n}@example.com"}, **JSON)
        orders.append(answer.json()["order_id"])
        stripe_fake.emulator.confirm_payment_intent(answer.json()["client_secret"].split("_secret_")[0])
    stripe_fake.deliver_webhooks()
    assert FollowUp.objects.filter(status="queued").count() == 24

    def work(i: int) -> int:
        worker = Worker(
            queue_names=["*"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=f"w{i}",
            excluded_queue_names=[],
        )
        worker.run()
        return worker._run_tasks

    ran = run_together(work, n=2)
    assert sum(ran) >= 24
    assert FollowUp.objects.exclude(status="done").count() == 0
    assert set(FollowUp.objects.values_list("attempts", flat=True)) == {1}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"b{n}@example.com" for n in range(12))


def test_the_return_page_asks_stripe_once_and_queues_the_rest(
    usd_item: Item, stripe_fake: Any, held_queue: Any
) -> None:
    shopper = Shopper()
    session = shopper.web.get(f"/buy/{usd_item.pk}", **JSON).json()["id"]
    answer = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    pi = answer["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.objects[session]["status"] = "open"
    Payment.objects.filter(stripe_id=session).update(status="open", url="https://checkout.example/x")
    stripe_fake.failing_deliveries = True  # the webhook is late
    stripe_fake.emulator.confirm_payment_intent(pi)
    asked = len(stripe_fake.requests)
    page = shopper.web.get(f"/order/{answer['order_id']}/return?payment_intent={pi}")
    assert page.status_code == 200
    assert [r.path for r in stripe_fake.requests[asked:]] == [f"/v1/payment_intents/{pi}"]  # once
    assert Order.objects.get(public_id=answer["order_id"]).status == OrderStatus.PAID
    assert stripe_fake.emulator.get(session)["status"] == "open"  # the rest is a worker's
    assert FollowUp.objects.filter(kind="tidy_order", status="queued").exists()
    run_tasks()
    assert stripe_fake.emulator.get(session)["status"] == "expired"


def test_an_event_that_waited_for_its_order_is_retried_by_a_follow_up(
    usd_item: Item, stripe_fake: Any, post_event: Any, held_queue: Any
) -> None:
    from payments import orders as shop_orders
    from payments.tests.support import stripe_client

    new = freezing.NewOrder(public_id=shop_orders.BUY_NOW_IDS, browser="b-early", item=usd_item)
    pi = stripe_client("usd").v1.payment_intents.create(
        params={
            "amount": 2450,
            "currency": "usd",
            "metadata": {"order_id": str(new.public_id), "order_version": "1", "payment_ref": "early"},
        }
    )
    stripe_fake.emulator.confirm_payment_intent(pi.id)
    [succeeded] = [e for e in stripe_fake.emulator.events["usd"] if e["type"] == "payment_intent.succeeded"]
    assert post_event("usd", succeeded).json()["status"] == "pending"
    retry = FollowUp.objects.get(kind="pending_event")
    assert retry.run_after > timezone.now()  # after a short backoff
    run_tasks(include_later=True, limit=1)  # the order is still not there: tried again later
    retry.refresh_from_db()
    assert (retry.status, retry.attempts) == (
        "queued",
        1,
    ) and "not in the shop's database" in retry.last_error
    order, _ = freezing.make_frozen(new)  # the Pay request commits
    run_tasks(include_later=True)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID  # no return page, no sweep
    assert StripeEvent.objects.get(event_id=succeeded["id"]).status == "processed"


# ------------------------------------------------------------------------------------------------ a slow relay


@pytest.fixture
def slow_relay(settings: Any) -> Iterator[SmtpRelay]:
    relay = SmtpRelay(delay=2.0)
    relay.start()
    settings.EMAIL_BACKEND = "core.mail.RelayRecordingBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", relay.server_address[1]
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield relay
    relay.stop()


def test_a_slow_relay_holds_no_request_and_yields_one_email(
    usd_item: Item, stripe_fake: Any, held_queue: Any, slow_relay: SmtpRelay, settings: Any
) -> None:
    settings.EMAIL_TIMEOUT = 10  # a worker's budget, longer than the relay takes
    paid_with_a_second_object_open(stripe_fake, usd_item)
    stripe_fake.deliver_webhooks()
    assert slow_relay.connections == 0  # the webhook answered without waiting for the relay
    run_tasks()
    assert len(slow_relay.messages) == 1
    confirmation = FollowUp.objects.get(kind="confirmation")
    assert confirmation.status == "done" and confirmation.result == "250 2.0.0 Ok: queued as Q1"
    reconcile()
    run_tasks(include_later=True)
    assert len(slow_relay.messages) == 1  # one email


def test_a_relay_slower_than_the_budget_is_tried_again_with_the_same_message_id(
    usd_item: Item, stripe_fake: Any, held_queue: Any, slow_relay: SmtpRelay, settings: Any
) -> None:
    settings.EMAIL_TIMEOUT = 1  # the relay takes 2 s: the first try gives up, though the relay keeps it
    order, _ = paid_with_a_second_object_open(stripe_fake, usd_item)
    stripe_fake.deliver_webhooks()
    run_tasks()
    confirmation = FollowUp.objects.get(kind="confirmation")
    assert (confirmation.status, confirmation.attempts) == (
        "queued",
        1,
    ) and "timed out" in confirmation.last_error
    settings.EMAIL_TIMEOUT = 10
    time.sleep(1.5)  # the relay finishes taking the first copy
    run_tasks(include_later=True)
    confirmation.refresh_from_db()
    assert confirmation.status == "done"
    ids = {m.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in slow_relay.messages}
    assert ids == {f"<confirmation.{order.public_id}@testserver>".encode()}  # one message to the recipient


def test_follow_ups_are_idempotent_whatever_repeats(usd_item: Item, stripe_fake: Any) -> None:
    shopper = Shopper()
    answer = shopper.web.post(
        f"/item/{usd_item.pk}/intent", {"receipt_email": "x@example.com"}, **JSON
    ).json()
    stripe_fake.pay_intent(answer["client_secret"].split("_secret_")[0])
    order = Order.objects.get(public_id=answer["order_id"])
    assert len(mail.outbox) == 1
    for _ in range(3):
        followups.enqueue(FollowUp.Kind.CONFIRMATION, order_id=order.pk)
        followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=order.pk)
    assert len(mail.outbox) == 1
    post = make_event(
        "payment_intent.succeeded", stripe_fake.emulator.get(answer["client_secret"].split("_secret_")[0])
    )
    from payments.tests.stripe_fake import signed_event

    payload, signature = signed_event("usd", post)
    Client().post(
        "/webhooks/stripe/usd/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
    assert len(mail.outbox) == 1


def test_news_brings_a_retry_waiting_out_its_backoff_forward_and_queues_no_second(held_queue: Any) -> None:
    order = Order.objects.create(currency="usd", browser="b" * 32)
    followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=order.pk, delay=900)  # a retry after its backoff
    followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=order.pk)  # news: the work is owed now
    followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=order.pk, delay=900)  # later news moves nothing back
    queued = FollowUp.objects.get(key=f"tidy_order:{order.pk}", status=FollowUp.Status.QUEUED)
    assert queued.run_after <= timezone.now()
    assert FollowUp.objects.filter(key=queued.key).count() == 1
    assert run_tasks() >= 1  # its task is due now, not in 15 minutes
    queued.refresh_from_db()
    assert queued.status == FollowUp.Status.DONE
