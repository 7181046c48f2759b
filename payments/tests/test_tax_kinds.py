"""One order never has a tax included in its prices and a tax added to them: Stripe's documentation does not say
on what amount Checkout computes the added one (with the included tax, or without it), so the shop does not
depend on it. The admin refuses the configuration; an order that has it anyway is not sent to Checkout, and is
paid by card at the shop's own total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from payments.models import Order, Payment, Tax
from payments.tests.factories import make_tax
from payments.tests.support import JSON, cart_with

pytestmark = pytest.mark.django_db


def default_tax(name: str, percentage: str, *, inclusive: bool, currency: str = "usd") -> Tax:
    tax = Tax(
        name=name,
        percentage=Decimal(percentage),
        inclusive=inclusive,
        applies_to_every_order=True,
        currency=currency,
    )
    tax.full_clean()
    tax.save()
    return tax


def test_a_default_tax_of_the_other_kind_in_the_same_currency_is_refused() -> None:
    default_tax("VAT", "20", inclusive=True)
    with pytest.raises(ValidationError) as refused:
        default_tax("Sales tax", "8.875", inclusive=False)
    assert "inclusive" in refused.value.message_dict
    assert "VAT 20% (inclusive)" in refused.value.message_dict["inclusive"][0]
    default_tax("Regional", "2.5", inclusive=True)  # the same kind: fine
    default_tax("Sales tax", "8.875", inclusive=False, currency="eur")  # another currency: fine
    inactive = Tax(name="Old levy", percentage=Decimal("1"), inclusive=False, applies_to_every_order=True)
    inactive.currency, inactive.is_active = "usd", False
    inactive.full_clean()  # an inactive one carries nothing


def test_the_order_admin_refuses_an_included_and_an_added_tax() -> None:
    vat, levy = make_tax("VAT", "20", inclusive=True), make_tax("City levy", "2.5", inclusive=False)
    order = Order.objects.create(currency="usd")
    probe = Order(currency="usd")
    with pytest.raises(ValidationError):
        probe.clean_taxes([vat, levy])
    probe.clean_taxes([vat])
    probe.clean_taxes([levy])
    default_tax("Sales tax", "8.875", inclusive=False)
    with pytest.raises(ValidationError) as refused:
        probe.clean_taxes([vat])  # with the added tax every USD order carries
    assert "Sales tax" in refused.value.message_dict["taxes"][0]
    probe.clean_taxes([levy])
    assert order.taxes.count() == 0


def test_the_admin_form_shows_the_refusal(admin_client) -> None:
    vat, levy = make_tax("VAT", "20", inclusive=True), make_tax("City levy", "2.5", inclusive=False)
    response = admin_client.post(
        "/admin/payments/order/add/", {"currency": "usd", "email": "", "taxes": [vat.pk, levy.pk]}
    )
    assert response.status_code == 200  # the form again, with the error
    assert "cannot have a tax included in its prices and a tax added to them" in response.content.decode()
    assert Order.objects.count() == 0


def test_a_mixed_order_made_before_the_rule_is_not_sent_to_checkout_but_paid_by_card(
    client, usd_item, stripe_fake
) -> None:
    order = cart_with(client, (usd_item, 2))
    order.taxes.add(make_tax("VAT", "20", inclusive=True), make_tax("City levy", "2.5", inclusive=False))
    refused = client.get(f"/order/buy/{order.public_id}", **JSON)
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "checkout_unavailable"
    assert "cannot be shown on Stripe Checkout" in refused.json()["error"]["message"]
    assert stripe_fake.calls("POST", "/v1/checkout/sessions") == [] and not Payment.objects.exists()
    order.refresh_from_db()
    assert order.status == "draft"  # the freeze was rolled back with the refusal
    intent = client.post(f"/order/intent/{order.public_id}", **JSON)
    assert intent.status_code == 200 and intent.json()["amount"] == 4900 + 123  # 2.5% of 49.00 added
