"""Shoppers pressing Pay at once, from a process of their own (so that their threads never hold the measuring
process's GIL): `python -m deploy.tests.crowd BASE PATH CLICKS CSRF_COOKIE CSRF_TOKEN`. Each click comes from its
own address (X-Forwarded-For, trusted from loopback) with the shared CSRF cookie and token and no session. Prints
`ready` once every thread waits at the start line, then one JSON line per answer: status, Retry-After, the
error's code, seconds taken."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request


def click(
    base: str, path: str, n: int, cookie: str, token: str, go: threading.Event, out: threading.Lock
) -> None:
    request = urllib.request.Request(
        base + path,
        data=b"",
        method="POST",
        headers={
            "Accept": "application/json",
            "Cookie": f"csrftoken={cookie}",
            "X-CSRFToken": token,
            "X-Forwarded-For": f"10.{n // 250}.{n % 250}.{1 + n % 7}",
        },
    )
    go.wait()
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, head, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, exc.headers, exc.read()
    except OSError:
        status, head, body = 0, None, b""
    took = time.monotonic() - started
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    line = {
        "status": status,
        "retry_after": head.get("Retry-After") if head else None,
        "code": code,
        "took": took,
    }
    with out:
        print(json.dumps(line), flush=True)


def main() -> None:
    base, path, clicks, cookie, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    go, out = threading.Event(), threading.Lock()
    crowd = [
        threading.Thread(target=click, args=(base, path, n, cookie, token, go, out), daemon=True)
        for n in range(clicks)
    ]
    for t in crowd:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()  # the start signal
    go.set()
    for t in crowd:
        t.join()


if __name__ == "__main__":
    main()
