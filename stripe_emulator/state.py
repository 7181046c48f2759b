"""The emulator's memory in a file, so that a demo (``make run``) survives a restart with the shop's database:
every object, event, idempotency key and Checkout detail Stripe would still hold. Written after every change, to
a temporary file then renamed over the old one, so a stop at any moment leaves a whole file (the last state).
Development-only; standard library only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["IdempotentEntry", "load", "save"]

VERSION = 1


@dataclass
class IdempotentEntry:
    """The answer saved for an idempotency key: replayed to a retry with the same parameters."""

    fingerprint: str
    status: int
    body: bytes
    request_id: str


class Store(Protocol):
    """What is kept of an emulator (``stripe_emulator.store.Store``): its objects, events and keys."""

    objects: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    _session_intents: set[str]
    _idempotency: dict[tuple[str, str], IdempotentEntry]

    @property
    def accounts(self) -> Mapping[str, object]: ...


#: The emulator's attributes that make up its state (plain JSON-able dicts and lists).
_PLAIN = (
    "objects",
    "delivered",
    "_owner",
    "_lines",
    "_line_includes",
    "_line_products",
    "_breakdowns",
    "_session_coupon",
    "_session_params",
    "_card_of_pm",
    "_iban_of_pm",
    "_card_of_charge",
    "_refunds_of_charge",
    "_collected_emails",
)


def save(emulator: Store, path: Path) -> None:
    """Write the emulator's state to ``path`` (whole or not at all)."""
    data: dict[str, Any] = {name: getattr(emulator, name) for name in _PLAIN}
    data["version"] = VERSION
    data["accounts"] = sorted(emulator.accounts)
    data["events"] = {currency: [e["id"] for e in events] for currency, events in emulator.events.items()}
    data["_session_intents"] = sorted(emulator._session_intents)
    data["_idempotency"] = [
        [account, key, entry.fingerprint, entry.status, entry.body.decode("utf-8"), entry.request_id]
        for (account, key), entry in emulator._idempotency.items()
    ]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def load(emulator: Store, path: Path) -> bool:
    """Restore the state saved in ``path`` (``False`` if there is none, or it is of other accounts)."""
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != VERSION or data.get("accounts") != sorted(emulator.accounts):
        return False
    for name in _PLAIN:
        setattr(emulator, name, data[name])
    emulator.events = {
        currency: [emulator.objects[i] for i in data["events"].get(currency, [])]
        for currency in emulator.accounts
    }
    emulator._session_intents = set(data["_session_intents"])
    emulator._idempotency = {
        (account, key): IdempotentEntry(fingerprint, status, body.encode("utf-8"), request_id)
        for account, key, fingerprint, status, body, request_id in data["_idempotency"]
    }
    return True
