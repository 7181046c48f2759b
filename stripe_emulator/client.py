"""A ``stripe.HTTPClient`` that talks to an in-memory :class:`~stripe_emulator.core.Emulator`.

Development/test-only code: no sockets, no Stripe. Every call is recorded in
``client.requests``; ``client.fail_next(kind)`` injects network failures for tests.
"""

from __future__ import annotations

import io
import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import stripe

from stripe_emulator.core import API_VERSION, Emulator, Headers
from stripe_emulator.params import decode_form

__all__ = ["FAILURE_KINDS", "EmulatorHTTPClient", "RecordedRequest"]

#: ``connection``/``timeout``: the request never reached Stripe. ``lost``: Stripe did what was asked and saved its
#: answer, which never came back (a read timeout). ``500``: Stripe failed before doing anything;
#: ``500_after``: after doing it; both 500s are saved for the idempotency key and replayed, as Stripe does.
#: ``429``: rate limited (not saved).
FAILURE_KINDS = frozenset({"connection", "timeout", "lost", "500", "429", "500_after"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the SDK sent it (recorded even when it failed)."""

    method: str
    path: str
    api_key: str | None
    idempotency_key: str | None
    params: dict[str, Any]


def _error_body(error_type: str, message: str, code: str | None = None) -> str:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if code:
        error["code"] = code
    return json.dumps({"error": error}, indent=2)


class EmulatorHTTPClient(stripe.HTTPClient):
    """Route the Stripe SDK's HTTP calls into an :class:`Emulator`, in-process.

    Use as ``stripe.StripeClient(key, http_client=EmulatorHTTPClient(emu),
    base_addresses={"api": "http://emulator"})``. Only the path and query of the URL matter.
    """

    name = "emulator"

    def __init__(self, emulator: Emulator) -> None:
        super().__init__()
        self.emulator = emulator
        self.requests: list[RecordedRequest] = []
        self._failures: deque[str] = deque()
        self._lock = threading.Lock()

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` requests fail as ``kind`` (see ``FAILURE_KINDS``)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}")
        with self._lock:
            self._failures.extend([kind] * times)

    def clear_failures(self) -> None:
        """Drop the failures still queued: Stripe is reachable again."""
        with self._lock:
            self._failures.clear()

    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Headers]:
        hdrs = Headers(dict(headers or {}))
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = post_data if isinstance(post_data, bytes) else (post_data or "").encode("utf-8")
        auth = hdrs.get("Authorization", "")
        api_key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            params = decode_form(body if method.lower() == "post" else parts.query)
        except (UnicodeDecodeError, ValueError):
            params = {}
        with self._lock:
            self.requests.append(
                RecordedRequest(method.upper(), parts.path, api_key, hdrs.get("Idempotency-Key"), params)
            )
            failure = self._failures.popleft() if self._failures else None
        if failure == "connection":
            raise stripe.APIConnectionError(
                "Unexpected error communicating with Stripe. (Network error: emulator: connection refused)",
                should_retry=True,
            )
        if failure == "timeout":
            raise stripe.APIConnectionError(
                "A timeout occurred while communicating with Stripe. "
                "(Network error: emulator: read timed out)",
                should_retry=True,
            )
        base_headers = {"Content-Type": "application/json", "Stripe-Version": API_VERSION}
        if failure == "429":
            return (
                _error_body(
                    "invalid_request_error",
                    "Too many requests hit the API too quickly (injected by the emulator).",
                    "rate_limit",
                ),
                429,
                Headers({**base_headers, "Request-Id": "req_emulator_429"}),
            )
        inject = failure if failure in ("500", "500_after") else None
        status, out_headers, out_body = self.emulator.handle(
            method, path, dict(hdrs.items()), body, inject=inject
        )
        if failure == "lost":
            raise stripe.APIConnectionError(
                "A timeout occurred while communicating with Stripe. (Network error: emulator: the answer was "
                "lost after Stripe processed the request)",
                should_retry=True,
            )
        return out_body.decode("utf-8"), status, Headers(out_headers)

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Headers]:
        body, status, headers_out = self.request(method, url, headers, post_data)
        return io.BytesIO(body.encode("utf-8")), status, headers_out

    def close(self) -> None:
        return None
