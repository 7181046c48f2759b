"""The shopper's orders: the cart (a draft bound to the browser session), one-item "buy now" orders, and
"change order", which closes an order's payment objects at Stripe and makes it a cart again.

Every change runs under the order's row lock (`states.locked`), so two requests for one cart never lose an
update. Each rule refuses with a clear `ShopError` and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from catalog.models import Item
from payments import states, sync
from payments.errors import AlreadyPaid, CurrencyMismatch, NotOrderOwner, OrderNotEditable, OrderNotPayable
from payments.models import MAX_QUANTITY, Order, OrderLine, OrderStatus, Tax

CART_SESSION_KEY = "cart_order_id"
ITEM_ORDERS_SESSION_KEY = "item_orders"


def with_pricing(queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Orders with everything pricing reads: the order and discount, lines with items, taxes (3 queries)."""
    qs = queryset if queryset is not None else Order.objects.all()
    return qs.select_related("discount").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("item").order_by("id")),
        Prefetch("taxes", queryset=Tax.objects.order_by("id")),
    )


def session_key(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    return str(request.session.session_key)


def can_change(request: HttpRequest, order: Order) -> bool:
    """Only the browser session that owns a draft, or staff, may change it."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return bool(order.session_key) and order.session_key == request.session.session_key


def can_view(request: HttpRequest, order: Order) -> bool:
    """An order is seen by the browser that owns it and by staff. An order staff made for a customer has no
    owner until it is paid: anyone with its (unguessable) link may see and pay it, and the payer owns it."""
    return can_change(request, order) or not order.session_key


def parse_order_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def new_cart(request: HttpRequest, currency: str) -> Order:
    """A new cart for this browser; the previous one stays reachable from "Your orders"."""
    order = Order.objects.create(currency=currency.lower(), session_key=session_key(request))
    request.session[CART_SESSION_KEY] = str(order.public_id)
    request.session.save()
    return order


def current_cart(request: HttpRequest) -> Order | None:
    """The browser's cart, if it has one that is still its own."""
    public_id = parse_order_id(request.session.get(CART_SESSION_KEY, ""))
    if public_id is None or not request.session.session_key:
        return None
    return Order.objects.filter(public_id=public_id, session_key=request.session.session_key).first()


def browser_orders(request: HttpRequest) -> QuerySet[Order]:
    """Every order of this browser that has something in it, newest first ("Your orders")."""
    if not request.session.session_key:
        return Order.objects.none()
    return with_pricing(
        Order.objects.filter(session_key=request.session.session_key, lines__isnull=False).distinct()
    )


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"Quantity must be a whole number from 1 to {MAX_QUANTITY}.")


def put_item(
    request: HttpRequest, order: Order, item: Item, quantity: int, *, add: bool = False
) -> OrderLine:
    """Set the quantity of `item` in the order (or add to it when `add`), under the order's row lock."""
    check_quantity(quantity)
    with states.locked(order.pk) as order:
        states.check_editable(order, can_change(request, order))
        has_lines = order.lines.exists()
        if has_lines and item.currency != order.currency:
            raise CurrencyMismatch(
                f"{item.name} is priced in {item.currency.upper()}, and this order is in "
                f"{order.currency.upper()}. An order is paid in one currency: start another order for it."
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
                    f"This order's discount {discount.name} is in {discount.currency.upper()}, and "
                    f"{item.name} is priced in {item.currency.upper()}. An order is paid in one currency: "
                    "start another order for it."
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
            raise OrderNotEditable("The order changed at the same time; please try again.") from exc
        order.save(update_fields=["currency", "updated_at"])
    return line


def remove_item(request: HttpRequest, order: Order, item_id: int) -> None:
    with states.locked(order.pk) as order:
        states.check_editable(order, can_change(request, order))
        order.lines.filter(item_id=item_id).delete()
        order.save(update_fields=["updated_at"])


def change_order(order: Order, *, may_change: bool) -> Order:
    """Make a frozen order a cart again: every open payment object is closed at Stripe first, and the order
    thaws only if Stripe confirms none of them was paid or is processing (otherwise `OrderNotPayable`, with
    what Stripe said applied). A draft is left as it is."""
    if not may_change:
        raise NotOrderOwner("This order belongs to another shopper.")
    refusal: OrderNotEditable | None = None
    with states.locked(order.pk) as order:
        if order.status == OrderStatus.DRAFT:
            return order
        if order.status != OrderStatus.AWAITING_PAYMENT:
            raise OrderNotEditable(
                f"This order is {order.get_status_display().lower()} and can no longer be changed."
            )
        try:
            sync.close_others(order)
        except OrderNotPayable as exc:  # keep what Stripe said (the order is now processing or paid)
            refusal = OrderNotEditable(f"{exc.message} It can no longer be changed.")
        else:
            order.refresh_from_db()
            states.thaw(order)
            return order
    assert refusal is not None
    raise refusal


def buy_now_order(request: HttpRequest, item: Item, *, page_loaded_at: datetime | None = None) -> Order:
    """The shopper's open one-item order for `item`, kept in the session; a new one once that is paid (or
    processing, or held for staff) -- unless that happened after the shopper's page was loaded
    (`page_loaded_at`): then the click comes from a tab that did not know, and `AlreadyPaid` says so instead
    of charging the shopper a second time.

    The browser session's row is locked while the order is found or created, so that two first clicks (or a
    reload racing the Pay button) arriving at two app processes find the same order, hence one PaymentIntent.
    """
    key = session_key(request)
    with transaction.atomic():
        list(Session.objects.select_for_update().filter(session_key=key).values_list("pk", flat=True))
        # What a concurrent request of this session stored wins over what this request loaded earlier.
        stored = request.session.__class__(session_key=key).load()
        orders: dict[str, str] = {
            **request.session.get(ITEM_ORDERS_SESSION_KEY, {}),
            **stored.get(ITEM_ORDERS_SESSION_KEY, {}),
        }
        public_id = parse_order_id(orders.get(str(item.pk), ""))
        existing = None
        if public_id is not None:
            existing = Order.objects.filter(
                public_id=public_id,
                session_key=key,
                currency=item.currency,
                status__in=states.PAYABLE,
                needs_attention=False,
            ).first()
        if existing is not None:
            return existing
        if public_id is not None and page_loaded_at is not None:
            settled = (
                Order.objects.filter(public_id=public_id, session_key=key)
                .exclude(status__in=states.PAYABLE)
                .filter(updated_at__gt=page_loaded_at)
                .first()
            )
            if settled is not None:
                raise AlreadyPaid(
                    f"You paid for {item.name} in another tab a moment ago (order "
                    f"{str(settled.public_id)[:8]}, {settled.get_status_display().lower()}). Nothing was "
                    "charged now; reload the page to buy it again.",
                    order_url=settled.get_absolute_url(),
                )
        order = Order.objects.create(currency=item.currency, session_key=key)
        OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
        orders[str(item.pk)] = str(order.public_id)
        request.session[ITEM_ORDERS_SESSION_KEY] = orders
        request.session.save()  # now, not with the response: a 502 answer is not saved, the retry needs the order
    return order


def follow_price(order: Order, item: Item) -> Order:
    """A one-item order follows its item's price, so the shopper pays what the item page shows: when the
    price changed since the order was frozen, the order is changed (its objects closed at Stripe first)."""
    line = order.lines.filter(item=item).first()
    if line is None or line.unit_price == item.amount:
        return order
    if order.status == OrderStatus.AWAITING_PAYMENT:
        order = change_order(order, may_change=True)
    with states.locked(order.pk) as order:
        if states.is_editable(order):
            order.lines.filter(item=item).update(unit_price=item.amount)
    return order
