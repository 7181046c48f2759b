"""Promotion codes: a `Discount` with a `code`, a validity window and a maximum number of paid uses.

- A shopper enters a code on the page of their cart (a draft order they own): `apply_code` checks it and
  attaches its discount to the order, or refuses and changes nothing. The discount is then part of the order
  like one staff attached: priced by `pricing`, frozen into the snapshot, sent to Checkout as a coupon, so both
  ways to pay charge the same total.
- **Guessing learns nothing.** Tries are rate limited per browser and per address (the "promo" group of
  `settings.RATELIMITS`, and nginx's `limit_req` in front). Every refusal of a code that cannot apply (unknown,
  switched off, not valid yet, expired, in another currency, used up) answers the same 400 and the same words,
  so a guess cannot tell a code that exists from one that does not. Staff see the real reason: each refusal of an
  existing code is counted per code and reason (`PromotionRefusal`, on the discount's admin page); an unknown
  code is logged.
- **Where the limit is enforced: when the order is frozen, by holding a use.** `hold` runs inside
  `freezing.freeze` (under the order's lock, before any Stripe object exists): it locks the discount's row and
  counts the uses held by other orders; a code used up refuses the freeze, so nothing is created at Stripe. Two
  carts paying with the last use take the discount's lock one after the other: the second sees the first one's
  hold and is refused before it is charged anything. A held use is always honored when it is paid, and no
  shopper is ever charged for a code that is then refused.
- **Holds are short, and one client cannot take them all.** An order holds a use while it has a payment object
  Stripe could still take (open or processing), or once it is processing or paid. A Checkout Session of an
  order with a limited code expires at Stripe after `PROMO_HOLD_MINUTES` (Stripe's shortest, 30, by default),
  and `orders.release_stale_holds` (run by `reconcile_payments`) closes the PaymentIntents of orders held longer than
  that and thaws them back to carts. A use is given back at once when its object is canceled or expires (the
  object's own event, or the shop's own cancel). One browser holds at most `PROMO_HOLDS_PER_BROWSER` uses of a
  code at a time, and one address (that entered the code) at most `PROMO_HOLDS_PER_ADDRESS`, and never more
  than half of the code's uses (at least one): five quick carts from one browser hold one use, not five.
- The window is checked when the code is entered and again when a cart is frozen; an order frozen in time
  keeps its discount even if it is paid after the code expired (its snapshot is what Stripe was asked for).
"""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from payments import locks, states
from payments.errors import ShopError
from payments.models import Discount, Order, OrderStatus, Payment, PromotionRefusal
from payments.pricing import PricedOrder

logger = logging.getLogger("payments.promotions")

# Orders in these states hold one use of their discount whatever their payment objects (being paid or paid);
# an order waiting for payment holds one while it has an object Stripe could still take (`states.LIVE_PAYMENTS`).
HOLDING = frozenset({OrderStatus.PROCESSING, *states.PAID_STATES})
Reason = PromotionRefusal.Reason


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


def hold_minutes() -> int:
    return int(settings.PROMO_HOLD_MINUTES)


def holders(discount: Discount) -> QuerySet[Order]:
    """Orders that hold (or used) one of the discount's uses: processing or paid, or waiting for payment with an
    object Stripe could still take."""
    live = Exists(Payment.objects.filter(order=OuterRef("pk"), status__in=states.LIVE_PAYMENTS))
    return Order.objects.filter(discount=discount).filter(
        Q(status__in=HOLDING) | Q(live, status=OrderStatus.AWAITING_PAYMENT)
    )


def paid_uses(discount: Discount) -> int:
    return Order.objects.filter(discount=discount, status__in=states.PAID_STATES).count()


def address_digest(address: str) -> str:
    """What an order keeps of the address that entered its code: a digest, enough to count its holds."""
    return hashlib.sha256(f"promo-address:{address}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _when(moment: datetime) -> str:
    """A date and time in the shopper's language (`14 Mar 2026, 09:30`, `14.03.2026, 09:30`: core/formats)."""
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


# ------------------------------------------------------------------------------------------------ entering a code


def refusal_reason(discount: Discount, order: Order, now: datetime | None = None) -> str | None:
    """Why the code of `discount` cannot apply to `order` now (a `PromotionRefusal.Reason`), or None."""
    now = now or timezone.now()
    if not discount.is_active:
        return Reason.INACTIVE
    if discount.valid_from and now < discount.valid_from:
        return Reason.NOT_YET_VALID
    if discount.valid_until and now >= discount.valid_until:
        return Reason.EXPIRED
    if not discount.applies_to(order.currency):
        return Reason.OTHER_CURRENCY
    if discount.max_uses is not None and holders(discount).exclude(pk=order.pk).count() >= discount.max_uses:
        return Reason.USED_UP
    return None


def not_valid(code: str) -> PromotionCodeRefused:
    """The one answer to a code that cannot apply, whether it exists or not."""
    return PromotionCodeRefused(
        _("The code %(code)s is not valid.") % {"code": normalize(code)[:40]},
        code="code_not_valid",
        status=400,
    )


def record_refusal(discount: Discount, reason: str) -> None:
    """Count a refused try of an existing code for staff (outside the refused request's transaction)."""
    with transaction.atomic():
        counted = PromotionRefusal.objects.filter(discount=discount, reason=reason).update(
            count=F("count") + 1, last_at=timezone.now()
        )
        if not counted:
            try:
                with transaction.atomic():
                    PromotionRefusal.objects.create(discount=discount, reason=reason, count=1)
            except IntegrityError:  # a concurrent refusal created it first
                PromotionRefusal.objects.filter(discount=discount, reason=reason).update(
                    count=F("count") + 1, last_at=timezone.now()
                )


def apply_code(order: Order, code: str, *, may_change: bool, address: str = "") -> Discount:
    """Attach the discount of promotion code `code` to the cart `order` (its owner's or staff's request, from
    `address`, the client's address as the rate limits count it)."""
    if not normalize(code):
        raise PromotionCodeRefused(_("Enter a promotion code."), code="code_missing", status=400)
    reason: str | None = None
    with locks.locked(order.pk) as order:
        states.check_editable(order, may_change)
        current = order.discount if order.discount_id else None
        if current is not None and not current.code:  # said whatever the code is: nothing learnt from it
            raise PromotionCodeRefused(
                _("This order already has the discount %(discount)s; one discount applies per order.")
                % {"discount": current.name},
                code="code_not_combinable",
            )
        discount = find(code)
        reason = refusal_reason(discount, order) if discount is not None else "unknown"
        if reason is None:
            assert discount is not None
            order.discount = discount
            order.code_address = address_digest(address) if address else ""
            order.save(update_fields=["discount", "code_address", "updated_at"])
            logger.info("order %s: promotion code %s applied", order.public_id, discount.code)
            return discount
    logger.info("order %s: promotion code refused (%s)", order.public_id, reason)
    if discount is not None:
        record_refusal(discount, reason)
    raise not_valid(code)


def remove_code(order: Order, *, may_change: bool) -> None:
    """Take the promotion code off the cart `order` (a discount staff attached stays)."""
    with locks.locked(order.pk) as order:
        states.check_editable(order, may_change)
        if order.discount_id is not None and order.discount is not None and order.discount.code:
            logger.info("order %s: promotion code %s removed", order.public_id, order.discount.code)
            order.discount = None
            order.code_address = ""
            order.save(update_fields=["discount", "code_address", "updated_at"])


# ------------------------------------------------------------------------------------------------ paying


def check_window(discount: Discount, now: datetime | None = None) -> None:
    """Refuse paying with a code that stopped (or has not started) being valid since it was entered: the
    shopper entered it, so saying why tells them nothing new."""
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


def used_up_error(discount: Discount) -> PromotionCodeRefused:
    """The uses of a code already on the order are all taken: it must come off before the order can be paid
    (entering a code that cannot apply is refused with one message whatever the reason: `apply_code`)."""
    return PromotionCodeRefused(
        _("The code %(code)s has been used up. Remove it to pay the full price.")
        % {"code": discount.code or discount.name},
        code="code_used_up",
    )


def address_cap(discount: Discount) -> int:
    """The uses of a limited code one address may hold at once: PROMO_HOLDS_PER_ADDRESS, and never more than
    half of the code's uses (at least one), so that one client never holds them all."""
    assert discount.max_uses is not None
    return max(1, min(int(settings.PROMO_HOLDS_PER_ADDRESS), discount.max_uses // 2))


def _held_by_the_same_client(discount: Discount, order: Order) -> bool:
    """Whether the browser or the address that is paying `order` already holds as many of the code's uses as it
    may (uses paid are no longer held)."""
    held = holders(discount).exclude(pk=order.pk).exclude(status__in=states.PAID_STATES)
    if order.browser and held.filter(browser=order.browser).count() >= int(settings.PROMO_HOLDS_PER_BROWSER):
        return True
    return bool(order.code_address) and (
        held.filter(code_address=order.code_address).count() >= address_cap(discount)
    )


def hold(order: Order, priced: PricedOrder) -> None:
    """Called by `freezing.freeze` before a payment object is created for `order` (under its lock): refuse a code
    that expired or is used up, or whose uses this client already holds; otherwise the use is held by the order
    through the object about to be created. An order that already holds its use (a live object) keeps it."""
    discount = order.discount if order.discount_id else None
    if discount is None or priced.discount is None:
        return  # no discount applies to what is being paid
    if not (discount.code or discount.valid_from or discount.valid_until or discount.max_uses is not None):
        return  # a plain discount staff attached: no limits
    if order.status == OrderStatus.DRAFT:
        check_window(discount)  # a frozen order keeps the discount of its snapshot
    if discount.max_uses is None:
        return
    if order.status != OrderStatus.DRAFT and order.payments.filter(status__in=states.LIVE_PAYMENTS).exists():
        return  # it holds its use already
    # The discount's row lock, after the order's (`locks`: lock 2), serializes the carts racing for its last
    # uses until each one's freeze commits or rolls back.
    locks.lock_discount(discount.pk)
    if holders(discount).exclude(pk=order.pk).count() >= discount.max_uses:
        logger.info("order %s: promotion code %s used up", order.public_id, discount.code)
        raise used_up_error(discount)
    if _held_by_the_same_client(discount, order):
        logger.info(
            "order %s: promotion code %s already held by the same client", order.public_id, discount.code
        )
        raise PromotionCodeRefused(
            _(
                "The code %(code)s is already held by another of your orders waiting for payment. Pay or change "
                "that order first, or remove the code here to pay the full price."
            )
            % {"code": discount.code or discount.name},
            code="code_held_elsewhere",
        )


def limits_uses(order: Order) -> bool:
    """Whether paying `order` holds a use of a limited code (its payment objects then expire early)."""
    discount = order.discount if order.discount_id else None
    return discount is not None and discount.max_uses is not None


def session_expiry(now: datetime | None = None) -> int:
    """When a Checkout Session holding a code's use expires at Stripe (`expires_at`): PROMO_HOLD_MINUTES from
    now (Stripe takes 30 minutes to 24 hours), rounded up to ten minutes, so that a retried request within them
    has the same parameters, hence the same idempotency key."""
    now = now or timezone.now()
    earliest = now.timestamp() + 60 * max(30, min(hold_minutes(), 24 * 60 - 10))
    return int(math.ceil(earliest / 600) * 600)


def stale_holds(older_than: timedelta | None = None) -> QuerySet[Order]:
    """Orders waiting for payment with a limited code whose objects Stripe could take were all opened longer ago
    than the hold lasts."""
    cutoff = timezone.now() - (older_than or timedelta(minutes=hold_minutes()))
    live = Payment.objects.filter(order=OuterRef("pk"), status__in=states.LIVE_PAYMENTS)
    return Order.objects.filter(
        Exists(live), status=OrderStatus.AWAITING_PAYMENT, discount__max_uses__isnull=False
    ).exclude(Exists(live.filter(created_at__gte=cutoff)))
