"""Run the shop locally: `python -m core.devserver` (what `make run` does).

It migrates the database, loads the demo catalog and starts Django's development server. When no Stripe keys are
configured (neither in the environment nor in `.env`), it runs in demo mode: it starts the local Stripe
emulator (`python -m stripe_emulator`, not a payment processor) with demo keys for USD, EUR and JPY,
points `STRIPE_API_BASE` and `STRIPE_JS_URL` at it, and every page shows a banner saying so. With real keys,
nothing of the emulator is used.

The development server speaks plain http on 127.0.0.1, so whatever `.env` says for production, the links handed
to Stripe come back to the address served (`SITE_URL`, unless set), and nothing redirects to https or sends
cookies over https only. `DEBUG` is on unless the environment or `.env` says otherwise; `DEBUG=0 make run`
serves the shop as production does (its own error pages, collected static files).

Beside the server it starts a task worker (`manage.py db_worker`): what follows a payment's news (closing
objects at Stripe, refunds owed, the emails) is queued in the database and done by it, as in production.

Its children (the emulator, the server, the worker) die with it, however it ends: even `kill -9` of the launcher (Linux's
parent-death signal); started by `make run`, the launcher itself stops them when make is killed.

The emulator keeps what it holds in a file beside the demo database (`emulator_state_file`), so a restart
finds the tax rates, open payments and charges the database remembers; a new database (deleted, or another
`DATABASE_URL`) starts with a new emulator state too.

This launcher imports only the standard library; Django reads the environment it prepares (the emulator's
endpoint is enabled for the event types `manage.py webhook_events` prints, as a real endpoint of the shop is).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO_ACCOUNTS = {
    "usd": (
        "sk_test_demo_usd_51DemoShopUSD",
        "pk_test_demo_usd_51DemoShopUSD",
        "whsec_demo_usd_51DemoShopUSD",
    ),
    "eur": (
        "sk_test_demo_eur_51DemoShopEUR",
        "pk_test_demo_eur_51DemoShopEUR",
        "whsec_demo_eur_51DemoShopEUR",
    ),
    "jpy": (
        "sk_test_demo_jpy_51DemoShopJPY",
        "pk_test_demo_jpy_51DemoShopJPY",
        "whsec_demo_jpy_51DemoShopJPY",
    ),
}
# DEBUG off on the development server: a key of its own when none is set (it serves 127.0.0.1 only).
LOCAL_SECRET_KEY = "django-insecure-make-run-serves-127.0.0.1-only"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def has_stripe_keys(env: dict[str, str]) -> bool:
    return any(
        key.endswith("SECRET_KEY") and key.startswith("STRIPE_") and value for key, value in env.items()
    )


def emulator_state_file(env: dict[str, str]) -> tuple[Path, Path | None]:
    """Where the demo emulator keeps its state, and the SQLite database it belongs to: beside it
    (`db.sqlite3` -> `db.sqlite3.stripe-emulator.json`); in the project folder for another database (`None`)."""
    url = env.get("DATABASE_URL", "") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    if not url.startswith("sqlite:///"):
        return BASE_DIR / "stripe-emulator.json", None
    database = Path(url.removeprefix("sqlite:///"))
    return database.with_name(f"{database.name}.stripe-emulator.json"), database


def wait_for(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a local URL we started
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"The Stripe emulator did not start at {url}.") from None
            time.sleep(0.1)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves bind (SO_REUSEADDR): a port the last `make run` left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send this process `sig` when its parent dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing happens). If the parent died already, act as if the signal came."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent is gone before the request took effect
        os.kill(os.getpid(), sig)


def child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child in its own process group (Ctrl+C reaches only the launcher, which stops it with its group), that
    the kernel stops when the launcher dies."""
    return subprocess.Popen(  # noqa: S603 - our own commands
        command, cwd=BASE_DIR, env=env, start_new_session=True, preexec_fn=die_with_parent
    )


def local_environment(env: dict[str, str], merged: dict[str, str], port: int) -> None:
    """What the development server needs whatever `.env` says for production: it serves plain http on
    127.0.0.1, so the links handed to Stripe come back to it (unless SITE_URL is set), nothing redirects to
    https, cookies are not https-only, and the host answers. DEBUG stays on unless set; with DEBUG off the
    shop runs as in production (its own error pages), with a local key when none is set and emails printed."""
    debug = merged.get("DEBUG", merged.get("debug", "1"))
    env.pop("debug", None)
    env["DEBUG"] = debug
    served = f"http://127.0.0.1:{port}"
    if not merged.get("SITE_URL"):  # the links handed to Stripe (return, success, cancel) come back here
        env["SITE_URL"] = served
    hosts = [h.strip() for h in merged.get("ALLOWED_HOSTS", merged.get("allowed_hosts", "")).split(",")]
    env["ALLOWED_HOSTS"] = ",".join(dict.fromkeys([h for h in hosts if h] + ["127.0.0.1", "localhost"]))
    env.pop("allowed_hosts", None)
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"):
        env[name] = "0"
    if not merged.get("SECRET_KEY") and not merged.get("secret_key"):
        env["SECRET_KEY"] = LOCAL_SECRET_KEY
    env.setdefault("EMAIL_URL", merged.get("EMAIL_URL") or "consolemail://")


def debug_is_on(env: dict[str, str]) -> bool:
    return env.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on", "y", "t"}


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a child and everything it started (its own process group)."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("EMULATOR_PORT", "12111")))
    parser.add_argument("--no-seed", action="store_true", help="Do not load the demo catalog.")
    args = parser.parse_args()

    if os.environ.get(
        "MAKELEVEL"
    ):  # `make run` (the recipe execs this): when make is killed, SIGTERM (below)
        die_with_parent()
    env = dict(os.environ)
    file_env = read_env_file(Path(env.get("ENV_FILE", BASE_DIR / ".env")))
    merged = {**file_env, **env}
    local_environment(env, merged, args.port)
    demo = not has_stripe_keys(merged)
    busy = [
        port for port in ([args.port, args.emulator_port] if demo else [args.port]) if not port_is_free(port)
    ]
    if busy:
        print(
            f"Port {', '.join(map(str, busy))} on 127.0.0.1 is already in use (another `make run`?). Stop what "
            "uses it, or choose other ports: PORT=8001 EMULATOR_PORT=12112 make run.",
            file=sys.stderr,
        )
        return 1
    # SIGTERM (e.g. from a process manager or `kill`) stops everything this started, as Ctrl+C does.
    signal.signal(signal.SIGTERM, interrupted)
    emulator: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    if demo:
        base = f"http://127.0.0.1:{args.emulator_port}"
        command = [sys.executable, "-m", "stripe_emulator", "--port", str(args.emulator_port)]
        # Its endpoint listens to exactly what a real one of the shop's is enabled for (`webhook_events`).
        printed = subprocess.run(  # noqa: S603
            [*manage, "webhook_events", "--comma"], env=env, check=True, capture_output=True, text=True
        ).stdout
        handled = printed.strip().splitlines()[-1]  # the list is the last line (log lines may come first)
        command += ["--webhook-base", f"http://127.0.0.1:{args.port}", "--enabled-events", handled]
        state, database = emulator_state_file(merged)
        if database is not None and not database.exists():
            state.unlink(missing_ok=True)  # a new database: the emulator starts anew with it
        command += ["--state-file", str(state)]
        for currency, (sk, pk, whsec) in DEMO_ACCOUNTS.items():
            command += ["--account", f"{currency}:{sk}:{pk}:{whsec}"]
            env[f"STRIPE_{currency.upper()}_SECRET_KEY"] = sk
            env[f"STRIPE_{currency.upper()}_PUBLISHABLE_KEY"] = pk
            env[f"STRIPE_{currency.upper()}_WEBHOOK_SECRET"] = whsec
        env.update(
            STRIPE_CURRENCIES=",".join(DEMO_ACCOUNTS),
            STRIPE_API_BASE=base,
            STRIPE_JS_URL=f"{base}/js/stripe.js",
            STRIPE_DEMO_MODE="1",
        )
    try:
        if demo:
            emulator = child(command, env)
            wait_for(f"{base}/healthz")
            print(
                f"Demo mode: no Stripe keys found, payments go to the local emulator at {base}.", flush=True
            )
        if not debug_is_on(env):  # production's static files (hashed names, served by WhiteNoise), first
            subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True)  # noqa: S603
        subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True)  # noqa: S603
        if not args.no_seed:
            subprocess.run([*manage, "seed_demo"], env=env, check=True)  # noqa: S603
        print(
            f"The shop runs at http://127.0.0.1:{args.port}/ (DEBUG {'on' if debug_is_on(env) else 'off'}; "
            "Ctrl+C stops it).",
            flush=True,
        )
        site_url = env.get("SITE_URL") or merged.get("SITE_URL", "")
        if site_url.rstrip("/") != f"http://127.0.0.1:{args.port}":
            print(f"Links handed to Stripe come back to SITE_URL={site_url}, not to this server.", flush=True)
        # The task worker beside the shop: what follows a payment's news (closing objects at Stripe, refunds
        # owed, emails) is queued in the database and done by it, as workers do in production.
        worker = child([*manage, "db_worker", "--interval", "0.5", "--no-startup-delay", "--no-reload"], env)
        print(f"A task worker runs beside it (pid {worker.pid}).", flush=True)
        server = child([*manage, "runserver", f"127.0.0.1:{args.port}", "--noreload"], env)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    finally:
        stop(server)
        stop(worker)
        stop(emulator)


if __name__ == "__main__":
    sys.exit(main())
