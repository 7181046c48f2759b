"""The shopper's orders: the cart (a draft owned by the browser), one-item "buy now" orders, and "change
order", which closes an order's payment objects at Stripe and makes it a cart again.

Orders belong to a browser (`core.browser`: a random id kept in its signed session cookie).

Every change runs under the order's row lock (`locks.locked`), so two requests for one cart never lose an
update. Each rule refuses with a clear `ShopError` and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from catalog.models import Item
from core.browser import browser_id, known_browser
from payments import freezing, locks, promotions, states, sync
from payments.errors import (
    AlreadyPaid,
    CurrencyMismatch,
    OrderNotEditable,
    OrderNotPayable,
    ShopError,
)
from payments.models import MAX_QUANTITY, Order, OrderLine, OrderStatus, Tax

logger = logging.getLogger("payments.orders")

CART_SESSION_KEY = "cart_order_id"


def with_pricing(queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Orders with everything pricing reads: the order and discount, lines with items, taxes (3 queries)."""
    qs = queryset if queryset is not None else Order.objects.all()
    return qs.select_related("discount").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("item").order_by("id")),
        Prefetch("taxes", queryset=Tax.objects.order_by("id")),
    )


def can_change(request: HttpRequest, order: Order) -> bool:
    """Only the browser that owns an order, or staff, may change or pay it."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return bool(order.browser) and order.browser == known_browser(request)


def can_edit(request: HttpRequest, order: Order) -> bool:
    """Whether the order's page offers its quantities and promotion code: its owner's (or staff's) cart, or an
    order waiting for payment that no payment is known to be in flight for (after a declined card or an
    abandoned Checkout: the cart endpoints `reopen` it first)."""
    return can_change(request, order) and (
        states.is_editable(order)
        or (order.status == OrderStatus.AWAITING_PAYMENT and not order.needs_attention)
    )


def reopen(request: HttpRequest, order: Order) -> Order:
    """Before a cart endpoint changes an order waiting for payment (a card was declined, Checkout was left):
    "Change order" on the shopper's behalf, which closes its open payment objects at Stripe first and refuses
    (409, with what Stripe said) when one of them is processing or went through. Anything else is left to the
    endpoint's own checks."""
    if order.status == OrderStatus.AWAITING_PAYMENT and can_edit(request, order):
        return change_order(order, may_change=True)
    return order


def can_view(request: HttpRequest, order: Order) -> bool:
    """An order is seen by the browser that owns it and by staff. An order staff made for a customer has no
    owner until it is paid: anyone with its (unguessable) link may see and pay it, and the payer owns it."""
    return can_change(request, order) or not order.browser


def parse_order_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def new_cart(request: HttpRequest, currency: str) -> Order:
    """A new cart for this browser; the previous one stays reachable from "Your orders"."""
    order = Order.objects.create(currency=currency.lower(), browser=browser_id(request))
    request.session[CART_SESSION_KEY] = str(order.public_id)
    return order


def current_cart(request: HttpRequest) -> Order | None:
    """The browser's cart, if it has one that is still its own."""
    public_id = parse_order_id(request.session.get(CART_SESSION_KEY, ""))
    browser = known_browser(request)
    if public_id is None or not browser:
        return None
    return Order.objects.filter(public_id=public_id, browser=browser).first()


def browser_orders(request: HttpRequest) -> QuerySet[Order]:
    """Every order of this browser that has something in it, newest first ("Your orders")."""
    browser = known_browser(request)
    if not browser:
        return Order.objects.none()
    return with_pricing(Order.objects.filter(browser=browser, lines__isnull=False).distinct())


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ShopError(
            _("Quantity must be a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY},
            code="invalid_quantity",
        )


def put_item(
    request: HttpRequest, order: Order, item: Item, quantity: int, *, add: bool = False
) -> OrderLine:
    """Set the quantity of `item` in the order (or add to it when `add`), under the order's row lock."""
    check_quantity(quantity)
    with locks.locked(order.pk) as order:
        states.check_editable(order, can_change(request, order))
        has_lines = order.lines.exists()
        if has_lines and item.currency != order.currency:
            raise CurrencyMismatch(
                _(
                    "%(item)s is priced in %(item_currency)s, and this order is in %(order_currency)s. "
                    "An order is paid in one currency: start another order for it."
                )
                % {
                    "item": item.name,
                    "item_currency": item.currency.upper(),
                    "order_currency": order.currency.upper(),
                }
            )
        if not has_lines:
            discount = order.discount if order.discount_id else None
            if (
                discount is not None
                and discount.amount_off is not None
                and discount.currency.lower() != item.currency
            ):
                # An emptied order takes the next item's currency; its fixed discount cannot follow.
                raise CurrencyMismatch(
                    _(
                        "This order's discount %(discount)s is in %(discount_currency)s, and %(item)s is priced "
                        "in %(item_currency)s. An order is paid in one currency: start another order for it."
                    )
                    % {
                        "discount": discount.name,
                        "discount_currency": discount.currency.upper(),
                        "item": item.name,
                        "item_currency": item.currency.upper(),
                    }
                )
            order.currency = item.currency
        line = order.lines.filter(item=item).first()
        if line is None:
            line = OrderLine(order=order, item=item, quantity=quantity, unit_price=item.amount)
        else:
            new_quantity = line.quantity + quantity if add else quantity
            check_quantity(new_quantity)
            line.quantity = new_quantity
        try:
            with transaction.atomic():
                line.save()
        except IntegrityError as exc:  # a concurrent request added the same item first
            raise OrderNotEditable(_("The order changed at the same time; please try again.")) from exc
        order.save(update_fields=["currency", "updated_at"])
    return line


def remove_item(request: HttpRequest, order: Order, item_id: int) -> None:
    with locks.locked(order.pk) as order:
        states.check_editable(order, can_change(request, order))
        order.lines.filter(item_id=item_id).delete()
        order.save(update_fields=["updated_at"])


def change_order(order: Order, *, may_change: bool) -> Order:
    """Make a frozen order a cart again: every open payment object is closed at Stripe first, and the order
    thaws only if Stripe confirms none of them was paid or is processing (otherwise `OrderNotPayable`, with
    what Stripe said applied). A draft is left as it is."""
    if not may_change:
        raise states.not_owner()
    refusal: OrderNotEditable | None = None
    with locks.locked(order.pk) as order:
        if order.status == OrderStatus.DRAFT:
            return order
        if order.status != OrderStatus.AWAITING_PAYMENT:
            raise states.no_longer_changeable(order)
        try:
            sync.close_others(order)
        except OrderNotPayable as exc:  # keep what Stripe said (the order is now processing or paid)
            refusal = OrderNotEditable(_("%(reason)s It can no longer be changed.") % {"reason": exc.message})
        else:
            order.refresh_from_db()
            states.thaw(order)
            return order
    assert refusal is not None
    raise refusal


# The ids of a browser's one-item orders are derived from the browser, the item and how many such orders it had:
# a Pay that failed before its order existed is retried with the same order id, so Stripe replays the object
# whose answer was lost (same idempotency key) instead of making a second one.
BUY_NOW_IDS = uuid.UUID("6f1d5c3e-2b7a-4f0e-9a51-3c8e2d4b7a10")


def buy_now_order(
    request: HttpRequest, item: Item, *, page_loaded_at: datetime | None = None
) -> Order | freezing.NewOrder:
    """The browser's open one-item order for `item`, or the one to make (`freezing.NewOrder`, created with its
    payment object by `paying.open_object`) once the last was paid, is processing or is held for staff --
    unless that happened after the shopper's page was loaded (`page_loaded_at`): then the click comes from a
    tab that did not see it, and `AlreadyPaid` says so instead of charging the shopper a second time.

    One current one-item order per browser and item is a database constraint (`Order.buy_now_key`, unique), so
    two first clicks arriving at two app processes together end up with the same order, hence one payment
    object. An order gives the key up for good once it is being paid, paid or held for staff, so an older order
    that becomes payable again (its payment failed) never collides with the newer one. One query (none for a
    browser the shop has not seen).
    """
    is_new_browser = not known_browser(request)
    browser = browser_id(request)
    history = (
        []
        if is_new_browser
        else list(Order.objects.filter(browser=browser, buy_now_item=item).order_by("id"))
    )
    key = states.buy_now_key(browser, item.pk)
    for order in history:
        if order.buy_now_key == key:  # held only while it is payable and not held for staff
            return order
    settled = [o for o in history if page_loaded_at is not None and o.updated_at > page_loaded_at]
    if settled:
        raise AlreadyPaid(
            _(
                "You paid for %(item)s in another tab a moment ago (order %(order)s, %(status)s). Nothing was "
                "charged now; reload the page to buy it again."
            )
            % {
                "item": item.name,
                "order": str(settled[-1].public_id)[:8],
                "status": str(settled[-1].get_status_display()).lower(),
            },
            order_url=settled[-1].get_absolute_url(),
        )
    return freezing.NewOrder(
        public_id=uuid.uuid5(BUY_NOW_IDS, f"{browser}/{item.pk}/{len(history)}"), browser=browser, item=item
    )


def follow_price(order: Order, item: Item) -> Order:
    """A one-item order follows its item's price, so the shopper pays what the item page shows: when the
    price changed since the order was frozen, the order is changed (its objects closed at Stripe first)."""
    if order.snapshot:
        [line] = order.snapshot["lines"]
        if line["unit_amount"] == item.minor_amount:
            return order
    elif not order.lines.filter(item=item).exclude(unit_price=item.amount).exists():
        return order
    if order.status == OrderStatus.AWAITING_PAYMENT:
        order = change_order(order, may_change=True)
    with locks.locked(order.pk) as order:
        if states.is_editable(order):
            order.lines.filter(item=item).update(unit_price=item.amount)
    return order


def release_stale_holds(older_than: timedelta | None = None) -> int:
    """Close at Stripe the objects of orders that held a code's use for too long and thaw the orders back to
    carts (as "Change order" does), so that abandoned carts give their uses back. Returns how many were
    released."""
    released = 0
    for order in promotions.stale_holds(older_than).order_by("updated_at")[:200]:
        try:
            change_order(order, may_change=True)
        except ShopError as exc:
            logger.info("order %s keeps its promotion code hold: %s", order.public_id, exc.message)
            continue
        released += 1
        logger.info("order %s: promotion code hold released (held too long)", order.public_id)
    return released
