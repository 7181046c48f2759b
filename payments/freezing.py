"""Freezing an order for payment: the priced snapshot every Stripe payment object is created for.

- `freeze(order)` (under the order's lock, `locks.locked`): a cart (`draft`) is priced now, its snapshot
  stored and its version raised by one (`draft -> awaiting_payment`); an order already frozen keeps its own
  snapshot. Refused: an order that is not payable (`states.check_payable`), an empty one, an amount Stripe
  would refuse, a total the shopper did not see, a promotion code that cannot be held (`promotions.hold`).
- `make_frozen(NewOrder)`: an item page's one-item order, inserted already frozen (version 1) with its line,
  in the transaction that opens its first payment object (`paying.open_object`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.utils.translation import gettext as _

from catalog.models import Item
from payments import gateway, promotions, states
from payments.errors import EmptyOrder, OrderChanged
from payments.models import Order, OrderLine, OrderStatus
from payments.pricing import PricedOrder, from_snapshot, price_buy_now, price_live, to_snapshot

logger = logging.getLogger("payments.freezing")


def freeze(order: Order, *, expected_total: int | None = None) -> PricedOrder:
    """The snapshot a payment object is created for: the order's own once frozen, else taken now (draft ->
    awaiting_payment, version + 1). Runs under `locks.locked()`; refuses an order that is not payable, an empty
    one, an amount Stripe would refuse, and (with `expected_total`) a total the shopper did not see."""
    states.check_payable(order)
    if order.status == OrderStatus.AWAITING_PAYMENT and order.snapshot:
        priced = from_snapshot(order.snapshot)
    else:
        priced = price_live(order)
        if priced.is_empty:
            raise EmptyOrder(_("This order is empty: add an item before paying."))
    if expected_total is not None and expected_total != priced.total:
        raise OrderChanged(
            _("This order changed since the page was loaded. Reload the page to see its total.")
        )
    gateway.check_amount(priced.total, priced.currency)
    # A promotion code expired, used up or held by the same client elsewhere refuses here, before Stripe.
    promotions.hold(order, priced)
    if order.status == OrderStatus.DRAFT:
        states.move(order, OrderStatus.AWAITING_PAYMENT)
        order.snapshot = to_snapshot(priced)
        order.version += 1
        # An order staff made for a customer stays without an owner until a payment succeeds: it belongs to
        # whoever pays it (`lifecycle`), not to whoever pressed Pay first.
        order.save(update_fields=["snapshot", "version", *states.STATUS_FIELDS])
        logger.info(
            "order %s frozen v%s total=%s %s", order.public_id, order.version, priced.total, order.currency
        )
    return priced


@dataclass(frozen=True)
class NewOrder:
    """A one-item order to make for a browser, born frozen together with its first payment object."""

    public_id: uuid.UUID
    browser: str
    item: Item


def make_frozen(
    new: NewOrder, *, expected_total: int | None = None, email: str = "", language: str = ""
) -> tuple[Order, PricedOrder]:
    """Insert the one-item order of `new` already frozen (draft -> awaiting_payment at birth, version 1), with
    its line, priced with the taxes every order in its currency carries. The new row is this transaction's
    until it commits, so nothing else can lock or pay it first."""
    item = new.item
    priced = price_buy_now(item)
    if expected_total is not None and expected_total != priced.total:
        raise OrderChanged(
            _("This item's price changed since the page was loaded. Reload the page to see it.")
        )
    gateway.check_amount(priced.total, priced.currency)
    order = Order.objects.create(
        public_id=new.public_id,
        currency=item.currency,
        browser=new.browser,
        buy_now_item=item,
        buy_now_key=states.buy_now_key(new.browser, item.pk),
        status=OrderStatus.AWAITING_PAYMENT,
        snapshot=to_snapshot(priced),
        version=1,
        email=email,
        language=language,
    )
    OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
    logger.info("order %s made frozen v1 total=%s %s", order.public_id, priced.total, order.currency)
    return order, priced
