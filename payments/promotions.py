"""Promotion codes: a `Discount` with a `code`, a validity window and a maximum number of paid uses.

- A shopper enters a code on the page of their cart (a draft order they own): `apply_code` checks it and
  attaches its discount to the order, or refuses with a clear `PromotionCodeRefused` and changes nothing. The
  discount is then part of the order like one staff attached: priced by `pricing`, frozen into the snapshot,
  sent to Checkout as a coupon, so both ways to pay charge the same total.
- **Where the limit is enforced: when the order is frozen, by holding a use.** `hold` runs inside
  `states.freeze` (under the order's lock, before any Stripe object exists): it locks the discount's row and
  counts the orders that hold one of its uses (frozen, being paid, paid or refunded); a code used up refuses
  the freeze, so nothing is created at Stripe and the cart stays a cart. Two carts paying with the last use
  at once take the discount's lock one after the other: the second sees the first one's hold and is refused
  before it is charged anything. A frozen order's use is therefore always honored when it is paid, and no
  shopper is ever charged for a code that is then refused (counting at payment instead would mean charging,
  then refunding or exceeding the maximum).
- A use is counted once the order is paid (`paid_uses`); a hold ends when the order thaws back to a cart
  ("Change order"). `release_stale_holds` thaws orders frozen with a limited code for longer than
  `HOLD_MINUTES` (their payment objects are closed at Stripe first, as "Change order" does), so abandoned
  carts do not keep uses forever; `reconcile_payments` runs it.
- The window is checked when the code is entered and again when the order is frozen; an order frozen in time
  keeps its discount even if it is paid after the code expired (its snapshot is what Stripe was asked for).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from core.money import display_money
from payments.errors import ShopError
from payments.models import Discount, Order, OrderStatus
from payments.pricing import PricedOrder

logger = logging.getLogger("payments.promotions")

# Orders in these states hold one use of their discount; the paid ones have used it.
HOLDING = (
    OrderStatus.AWAITING_PAYMENT,
    OrderStatus.PROCESSING,
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
)
USED = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
HOLD_MINUTES = 60


class PromotionCodeRefused(ShopError):
    """A code that cannot apply to this order; nothing was changed."""

    status = 409
    code = "promotion_code_refused"


def normalize(code: str) -> str:
    return (code or "").strip().upper()


def find(code: str) -> Discount | None:
    code = normalize(code)
    if not code:
        return None
    return Discount.objects.filter(code__iexact=code).first()


def holders(discount: Discount) -> QuerySet[Order]:
    """Orders that hold (or used) one of the discount's uses."""
    return Order.objects.filter(discount=discount, status__in=HOLDING)


def paid_uses(discount: Discount) -> int:
    return Order.objects.filter(discount=discount, status__in=USED).count()


def _when(moment: datetime) -> str:
    """A date and time in the shopper's language (`14 Mar 2026, 09:30`, `14.03.2026, 09:30`: core/formats)."""
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def check_window(discount: Discount, now: datetime | None = None) -> None:
    now = now or timezone.now()
    code = discount.code or discount.name
    if not discount.is_active:
        raise PromotionCodeRefused(
            _("The code %(code)s is no longer valid.") % {"code": code}, code="code_inactive"
        )
    if discount.valid_from and now < discount.valid_from:
        raise PromotionCodeRefused(
            _("The code %(code)s is valid from %(when)s.")
            % {"code": code, "when": _when(discount.valid_from)},
            code="code_not_yet_valid",
        )
    if discount.valid_until and now >= discount.valid_until:
        raise PromotionCodeRefused(
            _("The code %(code)s expired on %(when)s.") % {"code": code, "when": _when(discount.valid_until)},
            code="code_expired",
        )


def check_currency(discount: Discount, currency: str) -> None:
    if not discount.applies_to(currency):
        raise PromotionCodeRefused(
            _(
                "The code %(code)s takes %(amount)s off orders in %(code_currency)s; this order is in %(currency)s."
            )
            % {
                "code": discount.code,
                "amount": display_money(discount.amount_off or 0, discount.currency),
                "code_currency": discount.currency.upper(),
                "currency": currency.upper(),
            },
            code="code_other_currency",
        )


def used_up_error(discount: Discount, *, applied: bool) -> PromotionCodeRefused:
    """The code's uses are all taken: entering it changes nothing; one already on the order must come off
    before the order can be paid."""
    code = discount.code or discount.name
    return PromotionCodeRefused(
        _("The code %(code)s has been used up. Remove it to pay the full price.") % {"code": code}
        if applied
        else _("The code %(code)s has been used up.") % {"code": code},
        code="code_used_up",
    )


def check_usable(discount: Discount, order: Order) -> None:
    """Everything but the race for the last use (settled by `hold` when the order is frozen)."""
    check_window(discount)
    check_currency(discount, order.currency)
    if discount.max_uses is not None and holders(discount).exclude(pk=order.pk).count() >= discount.max_uses:
        raise used_up_error(discount, applied=order.discount_id == discount.pk)


def apply_code(order: Order, code: str, *, may_change: bool) -> Discount:
    """Attach the discount of promotion code `code` to the cart `order` (its owner's or staff's request)."""
    from payments import states  # states imports this module

    if not normalize(code):
        raise PromotionCodeRefused(_("Enter a promotion code."), code="code_missing", status=400)
    with states.locked(order.pk) as order:
        states.check_editable(order, may_change)
        discount = find(code)
        if discount is None:
            raise PromotionCodeRefused(
                _("The code %(code)s is not valid.") % {"code": normalize(code)[:40]},
                code="code_unknown",
                status=400,
            )
        if order.discount_id is not None and order.discount_id != discount.pk:
            current = order.discount
            if current is not None and not current.code:
                raise PromotionCodeRefused(
                    _("This order already has the discount %(discount)s; one discount applies per order.")
                    % {"discount": current.name},
                    code="code_not_combinable",
                )
        check_usable(discount, order)
        order.discount = discount
        order.save(update_fields=["discount", "updated_at"])
        logger.info("order %s: promotion code %s applied", order.public_id, discount.code)
    return discount


def remove_code(order: Order, *, may_change: bool) -> None:
    """Take the promotion code off the cart `order` (a discount staff attached stays)."""
    from payments import states

    with states.locked(order.pk) as order:
        states.check_editable(order, may_change)
        if order.discount_id is not None and order.discount is not None and order.discount.code:
            logger.info("order %s: promotion code %s removed", order.public_id, order.discount.code)
            order.discount = None
            order.save(update_fields=["discount", "updated_at"])


def hold(order: Order, priced: PricedOrder) -> None:
    """Called by `states.freeze` for a cart about to be frozen (under its lock, before any Stripe object):
    refuse a code that expired or is used up; a limited code's use is held by the frozen order itself."""
    from payments import states

    discount = order.discount if order.discount_id else None
    if discount is None or priced.discount is None:
        return  # no discount applies to what is being paid
    if not (discount.code or discount.valid_from or discount.valid_until or discount.max_uses is not None):
        return  # a plain discount staff attached: no limits
    check_window(discount)
    if discount.max_uses is None:
        return
    with states.busy_as_error():
        # The discount's row lock, after the order's (every path that takes both takes them in this order),
        # serializes the carts racing for its last uses until each one's freeze commits or rolls back.
        Discount.objects.select_for_update().filter(pk=discount.pk).exists()
    if holders(discount).exclude(pk=order.pk).count() >= discount.max_uses:
        logger.info("order %s: promotion code %s used up", order.public_id, discount.code)
        raise used_up_error(discount, applied=True)


def stale_holds(older_than: timedelta | None = None) -> QuerySet[Order]:
    cutoff = timezone.now() - (older_than or timedelta(minutes=HOLD_MINUTES))
    return Order.objects.filter(
        status=OrderStatus.AWAITING_PAYMENT, discount__max_uses__isnull=False, updated_at__lt=cutoff
    )


def release_stale_holds(older_than: timedelta | None = None) -> int:
    """Thaw orders frozen with a limited code for too long (closing their objects at Stripe first), so that
    abandoned carts give their uses back. Returns how many were released."""
    from payments import orders

    released = 0
    for order in stale_holds(older_than).order_by("updated_at")[:200]:
        try:
            orders.change_order(order, may_change=True)
        except ShopError as exc:
            logger.info("order %s keeps its promotion code hold: %s", order.public_id, exc.message)
            continue
        released += 1
        logger.info("order %s: promotion code hold released (frozen too long)", order.public_id)
    return released
