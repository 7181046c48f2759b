"""Reading what the emulator holds as Stripe answers it: lists of PaymentIntents and Checkout Sessions, and
``expand[]``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from stripe_emulator import shapes
from stripe_emulator.base import Ctx, EmulatorAccount, JSONDict, invalid
from stripe_emulator.checkout import CheckoutSessions
from stripe_emulator.store import created_in, page_of


class Reading(CheckoutSessions):
    """Lists and expansion."""

    def _list_of_kind(self, kind: str, url: str, typed: type, raw: JSONDict, ctx: Ctx) -> JSONDict:
        """``GET /v1/payment_intents``, ``GET /v1/checkout/sessions``: the account's objects of that kind, newest
        first, filtered by ``created`` (https://docs.stripe.com/api/payment_intents/list,
        https://docs.stripe.com/api/checkout/sessions/list); a session's ``status`` and ``payment_intent``
        filters too."""
        params = self._validate(raw, typed)
        unsupported = set(params) - {
            "created",
            "limit",
            "starting_after",
            "ending_before",
            "expand",
            "status",
        }
        unsupported -= {"payment_intent"} if kind == "checkout.session" else set()
        if unsupported:
            raise invalid(f"The emulator does not filter lists by {sorted(unsupported)}.")
        account = ctx.account.currency.lower()
        found = [
            o
            for o in self.objects.values()
            if o.get("object") == kind and self._owner.get(o["id"]) == account
        ]
        if kind == "checkout.session":
            for session in found:
                self._maybe_expire(session)
            if "status" in params:
                found = [o for o in found if o["status"] == params["status"]]
            if "payment_intent" in params:
                found = [o for o in found if o.get("payment_intent") == params["payment_intent"]]
        found = created_in(found, params.get("created"))
        made = {o["id"]: i for i, o in enumerate(found)}
        found.sort(key=lambda o: (o["created"], made[o["id"]]), reverse=True)
        page, has_more = page_of(found, params, kind)
        return shapes.list_object(copy.deepcopy(page), url, has_more)

    def _render(self, account: EmulatorAccount, obj: JSONDict, expand: Sequence[str]) -> JSONDict:
        """``obj`` with the paths named in ``expand`` expanded, as Stripe's ``expand[]`` does.

        A path is dotted (``latest_charge.payment_method``); a list object's items are reached with
        ``data.`` (``data.taxes`` on a Checkout Session's line items). Ids of stored objects become the
        objects; the fields Stripe only includes on request (a session's ``line_items`` and
        ``total_details.breakdown``, a charge's ``refunds``, a line item's ``taxes`` and ``discounts``) are
        added. Anything else answers Stripe's "This property cannot be expanded" error.
        """
        result = copy.deepcopy(obj)
        for path in expand:
            self._expand(account, result, path.split("."), path)
        return result

    def _includable(self, account: EmulatorAccount, node: JSONDict, key: str) -> Any:
        """A field Stripe leaves out unless expanded, or ``KeyError``."""
        kind = node.get("object")
        if kind == "checkout.session" and key == "line_items":
            return self._line_items_list(node["id"])
        if kind == "charge" and key == "refunds":
            ids = self._refunds_of_charge.get(node["id"], [])
            data = [copy.deepcopy(self.objects[i]) for i in reversed(ids)]
            return shapes.list_object(data, f"/v1/charges/{node['id']}/refunds")
        if kind == "item" and key in ("taxes", "discounts"):
            for includes in self._line_includes.values():
                if node["id"] in includes:
                    return copy.deepcopy(includes[node["id"]][key])
        raise KeyError(key)

    def _expand(self, account: EmulatorAccount, node: Any, parts: list[str], path: str) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for item in node:
                self._expand(account, item, parts, path)
            return
        if not isinstance(node, dict):
            raise invalid(f"This property cannot be expanded ({path}).", "expand")
        key, rest = parts[0], parts[1:]
        if node.get("object") == "list" and key == "data":
            for item in node.get("data", []):
                if rest:
                    self._expand(account, item, rest, path)
            return
        if node.get("object") == "checkout.session" and key == "total_details" and rest == ["breakdown"]:
            if node.get("total_details") is not None:
                node["total_details"]["breakdown"] = copy.deepcopy(self._breakdowns[node["id"]])
            return
        if key not in node:
            try:
                node[key] = self._includable(account, node, key)
            except KeyError:
                raise invalid(f"This property cannot be expanded ({path}).", "expand") from None
        value = node[key]
        if isinstance(value, str):
            target = self.objects.get(value)
            if target is None or self._owner.get(value) != account.currency.lower():
                raise invalid(f"This property cannot be expanded ({path}).", "expand")
            node[key] = value = copy.deepcopy(target)
        elif not rest and not isinstance(value, dict | list) and value is not None:
            raise invalid(f"This property cannot be expanded ({path}).", "expand")
        if rest:
            self._expand(account, value, rest, path)
