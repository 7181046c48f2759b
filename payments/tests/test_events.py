"""One list of the event types the shop handles (`payments.events`): the dispatcher, `manage.py webhook_events`,
the fake Stripe's endpoint and README all say the same."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from payments import events, webhooks
from payments.tests.stripe_fake import FakeStripe

README = Path(__file__).resolve().parents[2] / "README.md"
EVENT_TYPE = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)`")


def readme_events(text: str) -> list[str]:
    """The types README's list names, in its order (between its `webhook-events` markers)."""
    found = re.search(r"<!-- webhook-events -->(.*?)<!-- /webhook-events -->", text, re.DOTALL)
    assert found, "README lost its list of handled event types (the webhook-events markers)"
    return EVENT_TYPE.findall(found.group(1))


def test_readme_lists_exactly_the_handled_types() -> None:
    listed = readme_events(README.read_text(encoding="utf-8"))
    assert len(listed) == len(set(listed)), "README names a type twice"
    assert set(listed) == set(events.HANDLED)


def test_the_readme_check_sees_a_missing_or_extra_type() -> None:
    text = README.read_text(encoding="utf-8")
    assert set(readme_events(text.replace("`payment_intent.requires_action`", ""))) != set(events.HANDLED)
    assert set(
        readme_events(text.replace("`refund.failed`", "`refund.failed`, `payment_intent.created`"))
    ) != set(events.HANDLED)


def test_every_handled_type_has_one_handler_and_nothing_else_has_one() -> None:
    assert list(webhooks.HANDLERS) == list(events.HANDLED)
    assert len(set(events.HANDLED)) == len(events.HANDLED)


def test_webhook_events_prints_the_list() -> None:
    out = StringIO()
    call_command("webhook_events", "--comma", stdout=out)
    assert out.getvalue().strip().split(",") == sorted(events.HANDLED)


def test_the_fake_stripes_endpoint_listens_to_the_list(settings) -> None:
    assert FakeStripe().emulator.enabled_events == events.HANDLED
