"""Coupons and tax rates, the two objects a Checkout Session refers to by id."""

from __future__ import annotations

import copy
from decimal import Decimal

from stripe.params import CouponCreateParams, TaxRateCreateParams

from stripe_emulator import shapes
from stripe_emulator.base import Ctx, JSONDict, invalid, merge_metadata
from stripe_emulator.shapes import new_id
from stripe_emulator.store import Store


class Coupons(Store):
    """The Coupon and TaxRate APIs (create and retrieve)."""

    def _create_coupon(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, CouponCreateParams)
        percent = params.get("percent_off")
        amount_off = params.get("amount_off")
        if (percent is None) == (amount_off is None):
            raise invalid("Exactly one of percent_off or amount_off must be set.", "percent_off")
        if percent is not None and not (Decimal(0) < Decimal(percent) <= Decimal(100)):
            raise invalid("percent_off must be greater than 0 and at most 100.", "percent_off")
        if amount_off is not None:
            if "currency" not in params:
                raise invalid(
                    "You must pass currency when passing amount_off.", "currency", "parameter_missing"
                )
            if amount_off <= 0:
                raise invalid("amount_off must be a positive integer.", "amount_off")
        coupon_id = params.get("id") or new_id("", 8)
        if coupon_id in self.objects:
            raise invalid("Coupon already exists.", "id", "resource_already_exists")
        coupon = shapes.coupon(
            coupon_id=coupon_id,
            created=self.now(),
            percent_off=float(percent) if percent is not None else None,
            amount_off=amount_off,
            currency=params["currency"].lower() if amount_off is not None else None,
            duration=params.get("duration", "once"),
            duration_in_months=params.get("duration_in_months"),
            max_redemptions=params.get("max_redemptions"),
            metadata=merge_metadata({}, params.get("metadata", {})),
            name=params.get("name"),
            redeem_by=params.get("redeem_by"),
        )
        return copy.deepcopy(self._store(ctx.account, coupon))

    def _create_tax_rate(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, TaxRateCreateParams)
        percentage = Decimal(params["percentage"])
        if not (Decimal(0) <= percentage <= Decimal(100)):
            raise invalid("percentage must be between 0 and 100.", "percentage")
        rate = shapes.tax_rate(
            txr_id=new_id("txr_"),
            created=self.now(),
            active=params.get("active", True),
            country=params.get("country"),
            description=params.get("description"),
            display_name=params["display_name"],
            percentage=float(percentage),
            inclusive=params["inclusive"],
            jurisdiction=params.get("jurisdiction"),
            metadata=merge_metadata({}, params.get("metadata", {})),
            state=params.get("state"),
            tax_type=params.get("tax_type"),
        )
        return copy.deepcopy(self._store(ctx.account, rate))

    # ------------------------------------------------------------------ checkout sessions
