"""``python -m stripe_emulator``: run the in-memory Stripe emulator (not a payment processor) over HTTP.

Example::

    python -m stripe_emulator --port 12111 \
        --account usd:sk_test_usd:pk_test_usd:whsec_usd \
        --account eur:sk_test_eur:pk_test_eur:whsec_eur \
        --webhook-base http://127.0.0.1:8000 --latency-ms 0

``--hang-seconds N`` (or ``POST /_emulator/hang`` with ``seconds=N`` while it runs) makes every /v1 call
sleep N seconds before it is answered, to test the shop against a slow or hanging Stripe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stripe_emulator.core import Emulator, EmulatorAccount
from stripe_emulator.server import make_server


def parse_account(spec: str) -> EmulatorAccount:
    """``currency:secret_key:publishable_key:webhook_secret`` → :class:`EmulatorAccount`."""
    parts = spec.split(":")
    if len(parts) != 4 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected currency:sk_...:pk_...:whsec_..., got {spec!r}")
    currency, secret, publishable, webhook = parts
    return EmulatorAccount(currency.lower(), secret, publishable, webhook)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_emulator",
        description="In-memory Stripe API emulator for development and tests (not a payment processor).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--account",
        action="append",
        type=parse_account,
        required=True,
        help="currency:secret_key:publishable_key:webhook_secret (repeatable)",
    )
    parser.add_argument(
        "--webhook-base",
        default=None,
        help="POST events to {base}/webhooks/stripe/{currency}/ (e.g. http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="sleep this long before answering each /v1 call"
    )
    parser.add_argument(
        "--enabled-events",
        default="*",
        help="comma-separated event types sent to --webhook-base, like a Stripe endpoint's enabled_events "
        "(default: all)",
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=0,
        help="sleep this many seconds before answering each /v1 call, for slow-Stripe tests "
        "(change it while running: curl -d seconds=N http://HOST:PORT/_emulator/hang)",
    )
    parser.add_argument(
        "--base-url", default=None, help="public URL of this server (default http://host:port)"
    )
    parser.add_argument(
        "--state-file",
        default=None,
        help="keep the emulator's objects in this JSON file, written after every change and read at start "
        "(make run keeps it beside the demo database); without it, everything is forgotten at exit",
    )
    args = parser.parse_args(argv)

    emulator = Emulator(
        args.account,
        webhook_base=args.webhook_base.rstrip("/") if args.webhook_base else None,
        enabled_events=[e.strip() for e in args.enabled_events.split(",") if e.strip()],
    )
    if args.state_file:
        restored = emulator.keep_state_in(Path(args.state_file))
        print(
            f"Stripe emulator state {'restored from' if restored else 'kept in'} {args.state_file}",
            flush=True,
        )
    server = make_server(emulator, args.host, args.port, args.latency_ms, args.hang_seconds)
    if args.base_url:
        emulator.base_url = args.base_url.rstrip("/")
    print(
        f"Stripe emulator listening on {emulator.base_url} (in-memory, not a payment processor)", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
