"""Events: recorded for every change, listed by ``GET /v1/events``, signed and sent to the webhook endpoint (to
``deliver`` in-process, or POSTed by a background worker to ``webhook_base``)."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from stripe.params import EventListParams

from stripe_emulator import shapes, state
from stripe_emulator.base import API_VERSION, Ctx, EmulatorAccount, JSONDict
from stripe_emulator.shapes import new_id
from stripe_emulator.store import Store, created_in, page_of
from stripe_emulator.webhooks import sign_payload


class Events(Store):
    """Emitting events and delivering them to the webhook endpoint."""

    def _locked(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` under the lock, save the state, then send the events it emitted (outside the lock)."""
        with self._lock:
            try:
                result = fn()
            finally:
                outbox, self._outbox = self._outbox, []
                if self.state_file is not None:
                    state.save(self, self.state_file)
        self._dispatch(outbox)
        return result

    def _emit(
        self,
        account: EmulatorAccount,
        event_type: str,
        obj: JSONDict,
        ctx: Ctx | None,
        previous_attributes: JSONDict | None = None,
    ) -> JSONDict:
        data: JSONDict = {"object": shapes.present(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event: JSONDict = {  # no "account" or "context": optional, and this is no Connect account's event
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self._delivers(event_type) else 0,
            "request": {
                "id": ctx.request_id if ctx else None,
                "idempotency_key": ctx.idempotency_key if ctx else None,
            },
            "type": event_type,
        }
        self._store(account, event)
        self.events[account.currency.lower()].append(event)
        self._outbox.append((account, event))
        return event

    def _delivers(self, event_type: str) -> bool:
        """Whether an event of this type goes to the webhook endpoint."""
        if self.deliver is None and not self.webhook_base:
            return False
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.enabled_events)

    def _record_delivery(self, event: JSONDict, status: int) -> None:
        with self._lock:
            self.deliveries.append((event["id"], status))
            ok = 200 <= status < 300
            self.delivered[event["id"]] = ok
            if ok:
                event["pending_webhooks"] = 0

    def _dispatch(self, outbox: list[tuple[EmulatorAccount, JSONDict]]) -> None:
        for account, event in outbox:
            if not self._delivers(event["type"]):
                continue
            if self.deliver is not None:
                payload = json.dumps(event, indent=2).encode("utf-8")
                status = self.deliver(account, payload, sign_payload(payload, account.webhook_secret))
                self._record_delivery(event, status)
            elif self.webhook_base:
                self._ensure_worker()
                self._queue.put((account, event))

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._webhook_worker, name="emulator-webhooks", daemon=True
                )
                self._worker.start()

    def _webhook_worker(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._post_webhook(*item)
            finally:
                self._queue.task_done()

    def _post_webhook(self, account: EmulatorAccount, event: JSONDict, retries: int = 3) -> None:
        url = f"{self.webhook_base}/webhooks/stripe/{account.currency.lower()}/"
        payload = json.dumps(event, indent=2).encode("utf-8")
        delay = 0.5
        for attempt in range(retries + 1):
            status = 0
            request = urllib.request.Request(  # noqa: S310 - http(s) URL given by the developer
                url,
                data=payload,
                method="POST",
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": sign_payload(payload, account.webhook_secret),
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) emulator",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = 0
            self._record_delivery(event, status)
            if 200 <= status < 300 or attempt == retries:
                return
            time.sleep(delay)
            delay *= 2

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until background webhook deliveries are done; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the background webhook worker (if any)."""
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout=5)

    def _list_events(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, EventListParams)
        events = list(reversed(self.events[ctx.account.currency.lower()]))
        if "type" in params:
            pattern = re.escape(params["type"]).replace(r"\*", ".*")
            events = [e for e in events if re.fullmatch(pattern, e["type"])]
        if "types" in params:
            events = [e for e in events if e["type"] in params["types"]]
        if "delivery_success" in params:
            # Events whose webhook delivery succeeded (True) or did not succeed (False); events never sent
            # to an endpoint are neither.
            wanted = params["delivery_success"]
            events = [e for e in events if e["id"] in self.delivered and self.delivered[e["id"]] is wanted]
        page, has_more = page_of(created_in(events, params.get("created")), params, "event")
        return shapes.list_object(copy.deepcopy(page), "/v1/events", has_more)

    # ------------------------------------------------------------------ test-driving helpers
