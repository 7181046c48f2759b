"""`make run` (python -m core.devserver): the shop and, in demo mode, the emulator; SIGTERM or Ctrl+C stops
everything it started; a busy port is a clear error and a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "DJANGO_SETTINGS"))}
    return {**clean, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "ENV_FILE": os.devnull}


def start(env: dict[str, str], port: int, emulator_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core.devserver", "--port", str(port), "--emulator-port", str(emulator_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_up(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_a_signal_stops_the_shop_and_the_emulator(env: dict[str, str], how: signal.Signals) -> None:
    port, emulator_port = free_port(), free_port()
    process = start(env, port, emulator_port)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", process)
        wait_up(f"http://127.0.0.1:{emulator_port}/healthz", process)
        process.send_signal(how)
        assert process.wait(timeout=20) == 0
        time.sleep(0.5)
        for url in (f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{emulator_port}/healthz"):
            with pytest.raises(OSError):
                urllib.request.urlopen(url, timeout=2)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_busy_port_is_a_clear_error_and_a_non_zero_exit(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(env, port, free_port())
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in output
    assert "Traceback" not in output


def demo_env(env: dict[str, str], port: int, emulator_port: int) -> dict[str, str]:
    """What the launcher gives the shop in demo mode, for `manage.py shell` against the same database."""
    from core.devserver import DEMO_ACCOUNTS

    demo = {
        **env,
        "DEBUG": "1",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "STRIPE_CURRENCIES": ",".join(DEMO_ACCOUNTS),
    }
    demo["STRIPE_API_BASE"] = f"http://127.0.0.1:{emulator_port}"
    for currency, (sk, pk, whsec) in DEMO_ACCOUNTS.items():
        cur = currency.upper()
        demo |= {
            f"STRIPE_{cur}_SECRET_KEY": sk,
            f"STRIPE_{cur}_PUBLISHABLE_KEY": pk,
            f"STRIPE_{cur}_WEBHOOK_SECRET": whsec,
        }
    return demo


def shell(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def stripe_api(emulator_port: int, path: str, key: str, form: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{emulator_port}{path}",
        data=form.encode() if form is not None else None,
        headers={"Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
    return answer


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_the_demo_survives_a_restart(env: dict[str, str], tmp_path: Path) -> None:
    """`make run` stopped and started again: a Checkout with the default tax, paying an order opened before the
    restart and refunding an order paid before it all work, because the emulator kept its state in a file
    beside the demo database."""
    from core.devserver import DEMO_ACCOUNTS

    sk, pk, _ = DEMO_ACCOUNTS["usd"]
    port, emulator_port = free_port(), free_port()
    demo = demo_env(env, port, emulator_port)
    shop = f"http://127.0.0.1:{port}"

    process = start(env, port, emulator_port)
    try:
        wait_up(f"{shop}/healthz", process)
        shell(
            demo,
            "from decimal import Decimal; from payments.models import Tax; "
            "Tax.objects.create(name='Sales tax', percentage=Decimal('8.875'), inclusive=False, "
            "applies_to_every_order=True, currency='usd')",
        )
        items = shell(
            demo,
            "from catalog.models import Item; print(list(Item.objects.filter(price_currency='USD').order_by('id').values_list('id', flat=True)))",
        )
        first, second, third = json.loads(items)[:3]
        with urllib.request.urlopen(
            urllib.request.Request(f"{shop}/buy/{first}", headers={"Accept": "application/json"}), timeout=20
        ) as response:
            assert json.loads(response.read())["id"].startswith("cs_")  # the default tax's rate is made now
        # An order opened (its PaymentIntent made) and another paid, before the restart.
        open_code = (
            "import uuid; from catalog.models import Item; from payments import intents, states; "
            "o = intents.open_intent(states.NewOrder(uuid.uuid4(), 'restart-test-{n}', Item.objects.get(pk={pk}))); "
            "print(o.payment.stripe_id + ' ' + o.client_secret + ' ' + str(o.payment.order.public_id))"
        )
        opened_pi, opened_secret, opened_order = shell(demo, open_code.format(n=1, pk=second)).split()
        paid_pi, paid_secret, paid_order = shell(demo, open_code.format(n=2, pk=third)).split()
        stripe_api(
            emulator_port,
            f"/v1/payment_intents/{paid_pi}/confirm",
            pk,
            f"client_secret={paid_secret}&payment_method=pm_card_visa",
        )
        status_code = "from payments.models import Order; print(Order.objects.get(public_id='{o}').status)"
        wait_until(lambda: shell(demo, status_code.format(o=paid_order)) == "paid")
        stop(process)
        assert (tmp_path / "db.sqlite3.stripe-emulator.json").is_file()

        process = start(env, port, emulator_port)
        wait_up(f"{shop}/healthz", process)
        # Checkout with the default tax: its tax rate, remembered by the database, is still at "Stripe".
        with urllib.request.urlopen(
            urllib.request.Request(f"{shop}/buy/{second}", headers={"Accept": "application/json"}), timeout=20
        ) as response:
            assert response.status == 200 and json.loads(response.read())["id"].startswith("cs_")
        # The order opened before the restart is paid now.
        confirmed = stripe_api(
            emulator_port,
            f"/v1/payment_intents/{opened_pi}/confirm",
            pk,
            f"client_secret={opened_secret}&payment_method=pm_card_visa",
        )
        assert confirmed["status"] == "succeeded"
        wait_until(lambda: shell(demo, status_code.format(o=opened_order)) == "paid")
        # The order paid before the restart is refunded.
        shell(
            demo,
            f"from payments import refunds; from payments.models import Order; "
            f"refunds.refund_order(Order.objects.get(public_id='{paid_order}'), amount=100)",
        )
        listed: Any = stripe_api(emulator_port, f"/v1/refunds?payment_intent={paid_pi}", sk)
        assert [(r["amount"], r["status"]) for r in listed["data"]] == [(100, "succeeded")]
        wait_until(lambda: shell(demo, status_code.format(o=paid_order)) == "partially_refunded")
        stop(process)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_new_database_starts_a_new_emulator_state(env: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "db.sqlite3.stripe-emulator.json"
    state.write_text('{"version": 1, "accounts": ["eur", "usd"]}')
    port, emulator_port = free_port(), free_port()
    process = start(env, port, emulator_port)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", process)
        assert json.loads(state.read_text())["objects"] == {}  # not the stale file of a deleted database
    finally:
        stop(process)
