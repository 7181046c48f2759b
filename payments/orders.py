"""The shopper's orders: the cart (a draft bound to the browser session) and one-item "buy now" orders.

Every change runs in a transaction with the order row locked, so two requests for one cart never lose an
update. Each rule refuses with a clear `ShopError` and changes nothing.
"""

from __future__ import annotations

import uuid

from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from catalog.models import Item
from payments.errors import (
    CurrencyMismatch,
    EmptyOrder,
    NotOrderOwner,
    OrderNotEditable,
)
from payments.models import MAX_QUANTITY, Order, OrderLine, OrderStatus, Tax
from payments.pricing import PricedOrder, price_order

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
    """Order pages are reachable by their unguessable id; drafts only by their owner (or staff)."""
    return order.status != OrderStatus.DRAFT or can_change(request, order) or not order.session_key


def parse_order_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def new_cart(request: HttpRequest, currency: str) -> Order:
    order = Order.objects.create(currency=currency.lower(), session_key=session_key(request))
    request.session[CART_SESSION_KEY] = str(order.public_id)
    request.session.save()
    return order


def _locked(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def _check_editable(request: HttpRequest, order: Order) -> None:
    if not can_change(request, order):
        raise NotOrderOwner("This order belongs to another shopper.")
    if not order.is_editable:
        raise OrderNotEditable(
            f"This order is {order.get_status_display().lower()} and can no longer be changed."
        )
    if order.payments.filter(status="processing").exists():
        raise OrderNotEditable("A payment for this order is being processed; it can no longer be changed.")


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"Quantity must be a whole number from 1 to {MAX_QUANTITY}.")


def put_item(
    request: HttpRequest, order: Order, item: Item, quantity: int, *, add: bool = False
) -> OrderLine:
    """Set the quantity of `item` in the order (or add to it when `add`), under the order's row lock."""
    check_quantity(quantity)
    with transaction.atomic():
        order = _locked(order)
        _check_editable(request, order)
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
        order.status = OrderStatus.DRAFT
        order.save(update_fields=["currency", "status", "updated_at"])
    return line


def remove_item(request: HttpRequest, order: Order, item_id: int) -> None:
    with transaction.atomic():
        order = _locked(order)
        _check_editable(request, order)
        order.lines.filter(item_id=item_id).delete()
        order.save(update_fields=["updated_at"])


def priced_for_payment(order: Order) -> PricedOrder:
    """The priced order, refusing an empty one."""
    priced = price_order(order)
    if priced.is_empty:
        raise EmptyOrder("This order is empty: add an item before paying.")
    return priced


def buy_now_order(request: HttpRequest, item: Item) -> Order:
    """The shopper's open one-item order for `item`, kept in the session; a new one once that is paid.

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
            existing = (
                Order.objects.filter(public_id=public_id, session_key=key, currency=item.currency)
                .exclude(status__in=[OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED])
                .first()
            )
        if existing is not None:
            if existing.is_editable:  # a price change since the last visit applies to the open order
                existing.lines.filter(item=item).exclude(unit_price=item.amount).update(
                    unit_price=item.amount
                )
            return existing
        order = Order.objects.create(currency=item.currency, session_key=key)
        OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
        orders[str(item.pk)] = str(order.public_id)
        request.session[ITEM_ORDERS_SESSION_KEY] = orders
        request.session.save()  # now, not with the response: a 502 answer is not saved, the retry needs the order
    return order
