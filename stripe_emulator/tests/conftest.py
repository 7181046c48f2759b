"""Fixtures of the emulator's tests: an emulator of two accounts, the SDK on it, its HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorHTTPClient
from stripe_emulator.server import start_in_thread
from stripe_emulator.tests.helpers import (
    EUR,
    LIFECYCLE_EVENTS,
    USD,
    client_for,
)


@pytest.fixture
def emu() -> Emulator:
    return Emulator([USD, EUR], base_url="http://127.0.0.1:12111", enabled_events=LIFECYCLE_EVENTS)


@pytest.fixture
def http(emu: Emulator) -> EmulatorHTTPClient:
    return EmulatorHTTPClient(emu)


@pytest.fixture
def sc(http: EmulatorHTTPClient) -> stripe.StripeClient:
    return client_for(http)


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    srv = start_in_thread(emu)
    try:
        yield emu.base_url
    finally:
        srv.shutdown()
        srv.server_close()
        emu.close()
