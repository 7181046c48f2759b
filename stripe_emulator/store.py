"""The emulator's memory and the helpers every resource uses: storing and finding objects by account, the one
lock, parameter checks, amounts, list paging, balance transactions."""

from __future__ import annotations

import copy
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stripe_emulator import money, shapes, state
from stripe_emulator.base import API_VERSION, EmulatorAccount, JSONDict, invalid, missing
from stripe_emulator.params import check_params
from stripe_emulator.shapes import new_id
from stripe_emulator.state import IdempotentEntry
from stripe_emulator.webhooks import DEFAULT_ENABLED_EVENTS

Deliver = Callable[[EmulatorAccount, bytes, str], int]


def created_in(objects: list[JSONDict], created: Any) -> list[JSONDict]:
    """A list's ``created`` filter: an exact timestamp, or ``gt``/``gte``/``lt``/``lte`` bounds."""
    if isinstance(created, int):
        return [o for o in objects if o["created"] == created]
    if isinstance(created, dict):
        checks: dict[str, Callable[[int, int], bool]] = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        for op, bound in created.items():
            objects = [o for o in objects if checks[op](o["created"], bound)]
    return objects


def page_of(objects: list[JSONDict], params: JSONDict, kind: str) -> tuple[list[JSONDict], bool]:
    """One page of a list, newest first, as Stripe pages it: ``limit`` (1-100, default 10) after
    ``starting_after`` or before ``ending_before`` (not both); whether more follow."""
    if "starting_after" in params and "ending_before" in params:
        raise invalid("You may only specify one of these parameters: ending_before, starting_after.")
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100.", "limit")
    ids = [o["id"] for o in objects]
    if "starting_after" in params:
        if params["starting_after"] not in ids:
            raise missing(kind, params["starting_after"], "starting_after")
        rest = objects[ids.index(params["starting_after"]) + 1 :]
        return rest[:limit], len(rest) > limit
    if "ending_before" in params:
        if params["ending_before"] not in ids:
            raise missing(kind, params["ending_before"], "ending_before")
        before = objects[: ids.index(params["ending_before"])]
        return before[-limit:], len(before) > limit
    return objects[:limit], len(objects) > limit


class Store:
    """The state of an :class:`~stripe_emulator.core.Emulator` (one per set of accounts) and its shared helpers."""

    def __init__(
        self,
        accounts: Sequence[EmulatorAccount],
        base_url: str = "http://127.0.0.1:12111",
        *,
        webhook_base: str | None = None,
        clock: Callable[[], float] = time.time,
        enabled_events: Sequence[str] = DEFAULT_ENABLED_EVENTS,
    ) -> None:
        if not accounts:
            raise ValueError("the emulator needs at least one account")
        self.accounts: dict[str, EmulatorAccount] = {a.currency.lower(): a for a in accounts}
        self.base_url = base_url.rstrip("/")
        self.webhook_base: str | None = webhook_base
        self.deliver: Deliver | None = None
        self.clock = clock
        #: The event types the webhook endpoint listens to, like a Stripe webhook endpoint's
        #: ``enabled_events`` (``*`` wildcards; ``["*"]`` for all). Every event is recorded and listed by
        #: ``GET /v1/events`` either way; only these are sent to ``deliver`` or ``webhook_base``.
        self.enabled_events: tuple[str, ...] = tuple(enabled_events)
        self.objects: dict[str, JSONDict] = {}
        self.events: dict[str, list[JSONDict]] = {c: [] for c in self.accounts}
        #: ``(event_id, status)`` for every delivery attempt (0 = connection error).
        self.deliveries: list[tuple[str, int]] = []
        #: ``event_id -> True`` once delivered (a 2xx answer), ``False`` while its last attempt failed.
        self.delivered: dict[str, bool] = {}
        self._owner: dict[str, str] = {}
        # What a Checkout Session's answer leaves out unless expanded, and what its hosted page shows.
        self._lines: dict[str, list[JSONDict]] = {}
        self._line_includes: dict[str, dict[str, dict[str, list[JSONDict]]]] = {}
        self._line_products: dict[str, list[tuple[str, str | None]]] = {}
        self._breakdowns: dict[str, JSONDict] = {}
        self._session_coupon: dict[str, JSONDict] = {}
        self._session_params: dict[str, JSONDict] = {}
        self._card_of_pm: dict[str, str] = {}
        self._iban_of_pm: dict[str, str] = {}
        self._card_of_charge: dict[str, str] = {}
        self._refunds_of_charge: dict[str, list[str]] = {}
        self._session_intents: set[str] = set()
        #: What shoppers typed in a hosted Checkout page's email field, by session.
        self._collected_emails: dict[str, str] = {}
        self._idempotency: dict[tuple[str, str], IdempotentEntry] = {}
        self._lock = threading.RLock()
        self._outbox: list[tuple[EmulatorAccount, JSONDict]] = []
        self._queue: queue.Queue[tuple[EmulatorAccount, JSONDict] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._by_secret = {a.secret_key: a for a in accounts}
        self._by_publishable = {a.publishable_key: a for a in accounts}
        #: ``"METHOD /v1/route"`` (ids replaced by ``{id}``) -> how many API calls were answered.
        self.calls: dict[str, int] = {}
        #: Where the state is written after every change (``keep_state_in``); ``None``: memory only.
        self.state_file: Path | None = None

    # ------------------------------------------------------------------ small helpers

    def now(self) -> int:
        return int(self.clock())

    def get(self, object_id: str) -> JSONDict:
        """A copy of any stored object (raises ``KeyError`` if unknown)."""
        with self._lock:
            return copy.deepcopy(self.objects[object_id])

    def stats(self) -> JSONDict:
        """What a load test reads: objects stored by kind (``payment_intent``, ``checkout.session``, ...) and
        API calls answered by route."""
        with self._lock:
            kinds: dict[str, int] = {}
            for obj in self.objects.values():
                kinds[str(obj.get("object"))] = kinds.get(str(obj.get("object")), 0) + 1
            return {"objects": kinds, "calls": dict(self.calls)}

    def account_for(self, currency: str) -> EmulatorAccount:
        return self.accounts[currency.lower()]

    def owner_of(self, object_id: str) -> EmulatorAccount:
        with self._lock:
            return self.accounts[self._owner[object_id]]

    def _store(self, account: EmulatorAccount, obj: JSONDict) -> JSONDict:
        self.objects[obj["id"]] = obj
        self._owner[obj["id"]] = account.currency.lower()
        return obj

    def _find(self, account: EmulatorAccount, kind: str, object_id: str, param: str = "id") -> JSONDict:
        obj = self.objects.get(object_id)
        if obj is None or self._owner.get(object_id) != account.currency.lower() or obj.get("object") != kind:
            raise missing(kind, object_id, param)
        return obj

    def keep_state_in(self, path: Path) -> bool:
        """Keep the emulator's state in ``path`` from now on, starting from what it holds (``True`` if it held
        a state of these accounts). See :mod:`stripe_emulator.state`."""
        with self._lock:
            restored = state.load(self, path)
            self.state_file = path
            state.save(self, path)
        return restored

    # ------------------------------------------------------------------ parameters and amounts

    @staticmethod
    def _validate(params: Mapping[str, Any], typed_dict: type) -> JSONDict:
        if "payment_method_types" in params:
            raise invalid(
                "Received unknown parameter: payment_method_types. `payment_method_types` is not supported "
                f"in API version {API_VERSION}; use automatic_payment_methods or omit it.",
                "payment_method_types",
            )
        coerced, errors = check_params(params, typed_dict)
        if errors:
            first = errors[0]
            code = "parameter_missing" if first.message.startswith("Missing required param") else None
            if first.message.startswith("Received unknown parameter"):
                code = "parameter_unknown"
            elif code is None:
                code = "parameter_invalid"
            raise invalid(first.message, first.param, code)
        return coerced

    @staticmethod
    def _only_params(params: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in params:
            if key not in allowed:
                raise invalid(f"Received unknown parameter: {key}", key, "parameter_unknown")

    @classmethod
    def _only_expand(cls, params: Mapping[str, Any]) -> None:
        cls._only_params(params, ("expand",))

    # ------------------------------------------------------------------ expand

    def _check_amount(self, amount: Any, currency: str, param: str = "amount") -> int:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise invalid(f"Invalid integer: {amount}", param, "parameter_invalid")
        minimum = money.minimum_amount(currency)
        if amount < minimum:
            raise invalid(
                f"Amount must be at least {money.format_amount(minimum, currency)} {currency.lower()}",
                param,
                "amount_too_small",
            )
        if amount > money.MAXIMUM_AMOUNT:
            raise invalid(
                f"Amount must be no more than {money.format_amount(money.MAXIMUM_AMOUNT, currency)}",
                param,
                "amount_too_large",
            )
        return amount

    @staticmethod
    def _check_currency(currency: Any, param: str = "currency") -> str:
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise invalid(f"Invalid currency: {currency}.", param, "parameter_invalid")
        return currency.lower()

    # ------------------------------------------------------------------ payment intents

    def _balance_transaction(
        self, account: EmulatorAccount, amount: int, currency: str, source: str, kind: str, category: str
    ) -> JSONDict:
        """A balance transaction (the emulator charges no fees)."""
        txn = shapes.balance_transaction(
            txn_id=new_id("txn_"),
            amount=amount,
            fee=0,
            currency=currency,
            created=self.now(),
            source=source,
            kind=kind,
            reporting_category=category,
            description=None,
        )
        return self._store(account, txn)
