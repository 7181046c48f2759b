"""What every part of the emulator shares: its accounts, its request context, Stripe-shaped errors and
metadata semantics. Standard library and ``stripe`` only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import stripe

API_VERSION: str = stripe.api_version
JSONDict = dict[str, Any]


@dataclass(frozen=True)
class EmulatorAccount:
    """One emulated Stripe account (the shop has one per settlement currency)."""

    currency: str
    secret_key: str
    publishable_key: str
    webhook_secret: str


class EmulatorError(Exception):
    """A Stripe-shaped API error: ``status`` plus the ``error`` object of the JSON body."""

    def __init__(self, status: int, error: JSONDict) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error
        #: Whether Stripe saves this answer for the request's idempotency key (see ``_saved``).
        self.saved: bool | None = None

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))


class Headers(MutableMapping[str, str]):
    """A small case-insensitive header mapping (the SDK reads both ``Request-Id`` and ``request-id``)."""

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._store: dict[str, tuple[str, str]] = {}
        for key, value in (data or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> str:
        return self._store[key.lower()][1]

    def __setitem__(self, key: str, value: str) -> None:
        self._store[key.lower()] = (key, value)

    def __delitem__(self, key: str) -> None:
        del self._store[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


def invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> EmulatorError:
    error: JSONDict = {"type": "invalid_request_error", "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    return EmulatorError(status, error)


def missing(kind: str, object_id: str, param: str = "id") -> EmulatorError:
    return invalid(f"No such {kind}: '{object_id}'", param, "resource_missing", 404)


def merge_metadata(current: JSONDict, update: Any) -> JSONDict:
    """Stripe metadata semantics: ``""`` clears all, a key set to ``""`` is deleted."""
    if update in ("", None):
        return {}
    merged = dict(current)
    for key, value in dict(update).items():
        if value in ("", None):
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


@dataclass
class Ctx:
    """The request being answered: its account, whether it came with a publishable key, its ids."""

    account: EmulatorAccount
    publishable: bool
    request_id: str | None
    idempotency_key: str | None
