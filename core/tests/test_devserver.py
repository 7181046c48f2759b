"""`make run` (python -m core.devserver): the shop and, in demo mode, the emulator; SIGTERM or Ctrl+C stops
everything it started; `kill -9` of the launcher (or of make) does too; a busy port is a clear error and a
non-zero exit. `.env.example` copied as `.env` works: with test keys of one account the shop runs for that
account's currency and hands Stripe links back to the address served; left as it is, its placeholders are
refused with what to paste where. `DEBUG=0 make run` serves the shop's own error pages; the demo sells JPY."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stripe import StripeClient

from payments.tests.test_e2e import SHOTS, browser
from stripe_emulator import Emulator, EmulatorAccount
from stripe_emulator.server import start_in_thread

ROOT = Path(__file__).resolve().parents[2]
SHOTS_RUN = SHOTS / "make_run"
__all__ = ["browser"]  # the browser tests' Chromium


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh shell: nothing of Stripe, Django's settings or make from the test run."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "DJANGO_SETTINGS", "MAKE", "MFLAGS", "DEBUG", "SITE_URL"))
    }
    return {
        **clean,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENV_FILE": os.devnull,
        "STATIC_ROOT": str(tmp_path / "static"),
        **extra,
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)


def start(env: dict[str, str], port: int, emulator_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core.devserver", "--port", str(port), "--emulator-port", str(emulator_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_up(url: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
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


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_freed(*ports: int, timeout: float = 15) -> list[int]:
    """The ports still answering after `timeout` seconds (none, once what held them is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [port for port in ports if not refuses_connections(port)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


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
        assert not alive(worker_pid(process))  # the task worker stopped with the shop
    finally:
        if process.poll() is None:
            process.kill()


def worker_pid(process: subprocess.Popen[str]) -> int:
    """The task worker's pid, as the launcher printed it (the launcher has ended)."""
    output = process.stdout.read() if process.stdout else ""
    found = re.search(r"A task worker runs beside it \(pid (\d+)\)", output)
    assert found, output[-2000:]
    return int(found.group(1))


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def make_run(env: dict[str, str], port: int, emulator_port: int) -> subprocess.Popen[str]:
    """`make run` as typed (the project's .venv already made)."""
    if shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("needs make and the project's .venv (make .venv/.dev)")
    return subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.runtime", "run"],
        cwd=ROOT,
        env={**env, "PORT": str(port), "EMULATOR_PORT": str(emulator_port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("killed", ["the launcher", "make run"])
def test_kill_9_frees_both_ports(env: dict[str, str], killed: str) -> None:
    """SIGKILL cannot be caught. The launcher's children (each in its own process group) get the kernel's
    parent-death signal; `make run` execs the launcher as make's child, which stops them when make dies."""
    port, emulator_port = free_port(), free_port()
    process = (
        start(env, port, emulator_port) if killed == "the launcher" else make_run(env, port, emulator_port)
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", process)
        wait_up(f"http://127.0.0.1:{emulator_port}/healthz", process)
        process.kill()
        process.wait(timeout=5)
        assert wait_freed(port, emulator_port) == []
        worker = worker_pid(process)
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker)  # the task worker died with it too
    finally:
        stop_process(process)


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


# ------------------------------------------------------------------------------------------------ .env.example


def test_keys(currency: str) -> tuple[str, str, str]:
    """Keys shaped like a Stripe test account's (letters and digits after the prefix)."""
    tail = secrets.token_hex(12)
    return f"sk_test_51{tail}", f"pk_test_51{tail}", f"whsec_{secrets.token_hex(16)}"


test_keys.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def env_example_with(keys: dict[str, str]) -> str:
    """.env.example as a user leaves it after pasting `keys` (variable -> value) over the placeholders."""
    text = (ROOT / ".env.example").read_text()
    for name, value in keys.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, f"{name} is not set in .env.example"
    return text


def test_env_example_with_one_test_account_runs_the_shop_for_its_currency(tmp_path: Path) -> None:
    sk, pk, whsec = test_keys("usd")
    env_file = tmp_path / ".env"
    env_file.write_text(
        env_example_with(
            {
                "STRIPE_USD_SECRET_KEY": sk,
                "STRIPE_USD_PUBLISHABLE_KEY": pk,
                "STRIPE_USD_WEBHOOK_SECRET": whsec,
            }
        )
    )
    # Stripe itself is unreachable here: the account is the emulator's, reached through STRIPE_API_BASE.
    emulator = Emulator([EmulatorAccount("usd", sk, pk, whsec)])
    server = start_in_thread(emulator)
    port, emulator_port = free_port(), free_port()
    env = clean_env(tmp_path, ENV_FILE=str(env_file), STRIPE_API_BASE=emulator.base_url)
    process = start(env, port, emulator_port)
    served = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{served}/healthz", process)
        assert refuses_connections(emulator_port)  # real keys: no demo emulator of its own
        with urllib.request.urlopen(f"{served}/", timeout=10) as response:
            catalog = response.read().decode()
        assert "Demo mode" not in catalog
        assert "Espresso beans" in catalog and "Hand grinder" not in catalog  # USD items only
        item_id = re.search(r'href="/item/(\d+)"', catalog)
        assert item_id is not None
        request = urllib.request.Request(
            f"{served}/buy/{item_id.group(1)}", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            answer = json.loads(response.read())
        client = StripeClient(sk, base_addresses={"api": emulator.base_url})
        session = client.v1.checkout.sessions.retrieve(answer["id"])
        assert session.success_url.startswith(f"{served}/order/")
        assert session.cancel_url.startswith(f"{served}/order/")
        assert session.currency == "usd"
    finally:
        stop_process(process)
        server.shutdown()
        server.server_close()
        emulator.close()
    output = process.stdout.read() if process.stdout else ""
    assert "shop.example.com" not in output


def test_env_example_left_as_it_is_says_what_to_paste_where(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", env_file)
    env = clean_env(tmp_path, ENV_FILE=str(env_file))
    # By hand, as the file says of development commands (DEBUG=1; with DEBUG off SITE_URL is required first).
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode != 0
    assert "payments.E006" in check.stderr
    assert "STRIPE_USD_SECRET_KEY" in check.stderr and "sk_test_" in check.stderr
    assert "stripe listen" in check.stderr and "whsec_" in check.stderr
    process = start(env, free_port(), free_port())  # `make run` stops at once, with the same words
    output, _ = process.communicate(timeout=90)
    assert process.returncode != 0
    assert "payments.E006" in output and "Paste into .env" in output
    assert "Traceback" not in output


# ------------------------------------------------------------------------------------------------ in a browser


@dataclass
class Demo:
    url: str
    process: subprocess.Popen[str]


@pytest.fixture(scope="module")
def production_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`DEBUG=0 make run` with no keys: the demo, served as production serves the shop."""
    tmp_path = tmp_path_factory.mktemp("debug_off")
    port, emulator_port = free_port(), free_port()
    process = start(clean_env(tmp_path, DEBUG="0"), port, emulator_port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/healthz", process)
        yield Demo(url, process)
    finally:
        stop_process(process)


def shot(page: Any, name: str) -> None:
    SHOTS_RUN.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS_RUN / f"{name}.png"), full_page=True)


@pytest.mark.browser
def test_debug_off_serves_the_shops_own_not_found_page_in_russian(
    production_demo: Demo, browser: Any
) -> None:
    context = browser.new_context(locale="ru-RU", viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        response = page.goto(f"{production_demo.url}/no-such-page/")
        assert response is not None and response.status == 404
        assert page.inner_text("h1") == "Страница не найдена"
        assert page.locator("link[rel=stylesheet][href*='/static/css/shop.']").count() == 1
        assert "URLconf" not in page.content()  # not Django's debug page
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 249, 252)"
        shot(page, "ru-debug-off-404")
    finally:
        context.close()


@pytest.mark.browser
def test_the_demo_sells_in_yen(production_demo: Demo, browser: Any) -> None:
    """A zero-decimal currency in the demo: the third demo account is JPY's; ¥1,500 is charged as 1500."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{production_demo.url}/")
        assert "JPY" in page.inner_text("main")
        page.click("text=Drip bags, 10")
        assert page.inner_text("#item-price") == "¥1,500"
        shot(page, "en-jpy-item")
        page.wait_for_selector("#emulator-card-number")
        page.fill("#emulator-card-number", "4242424242424242")
        page.click("#pay-button")
        page.wait_for_url("**/return?**")
        assert page.inner_text("#result-title") in {"Payment received", "Payment processing"}
        page.reload()
        assert page.inner_text("#payment-amount") == "¥1,500"
        assert page.inner_text("#payment-currency") == "JPY"
        shot(page, "en-jpy-paid")
    finally:
        context.close()


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
            "import uuid; from catalog.models import Item; from payments import freezing, intents; "
            "o = intents.open_intent(freezing.NewOrder(uuid.uuid4(), 'restart-test-{n}', Item.objects.get(pk={pk}))); "
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
