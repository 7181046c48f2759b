"""Real servers for the live tests: gunicorn with deploy/gunicorn.conf.py and production settings on the test
database, the Stripe emulator in a process of its own, and a TCP proxy between the app and PostgreSQL that can
cut the database off (and bring it back) while gunicorn runs. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import importlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from payments import events

ROOT = Path(__file__).resolve().parents[2]

# The local Stripe emulator's package. It is moving to `stripe_emulator`: this line is the only one to change.
EMULATOR_MODULE = "stripe_emulator"


def emulator_package() -> Any:
    """The emulator package (its `sign_payload`, `Emulator`, ...), wherever it lives."""
    return importlib.import_module(EMULATOR_MODULE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(host: str | None = None, port: int | None = None) -> str:
    """The pytest database as a DATABASE_URL for another process (optionally through another host/port)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{host or db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}/{db['NAME']}"


def production_env(static_root: Path, **extra: str) -> dict[str, str]:
    """Production settings (core.settings, DEBUG off) with the test suite's Stripe accounts and database."""
    from core.test_settings import _TEST_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "GUNICORN_", "RATELIMIT_"))}
    env.update(_TEST_ENV)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "ENV_FILE": os.devnull,
            "DATABASE_URL": database_url(),
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "STATIC_ROOT": str(static_root),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in ("RATELIMIT_ENABLED", "AXES_ENABLED", "WEB_CONCURRENCY"):
        env.pop(name, None)  # production defaults: limits and lockout on, gunicorn sizes itself
    env.update(extra)
    return env


def collect_static(static_root: Path) -> None:
    env = production_env(static_root)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path
    base: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], log: Path, base: str, ready: str
) -> Iterator[Process]:
    """Start `command` (its own process group, output to `log`), wait until `ready` answers, stop it after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(ready, proc, command[2] if len(command) > 2 else command[0])
        yield Process(proc, log, base)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)


@contextmanager
def gunicorn(env: Mapping[str, str], log: Path, ready: str = "/favicon.ico") -> Iterator[Process]:
    """The shop as production runs it: `gunicorn -c deploy/gunicorn.conf.py core.wsgi`, started once the path
    `ready` answers (/healthz when every other path is redirected to https)."""
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_GRACEFUL_TIMEOUT": "2"}
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "core.wsgi"]
    with running(command, env, log, base, f"{base}{ready}") as process:
        yield process


@contextmanager
def emulator(
    env: Mapping[str, str], log: Path, latency_ms: int = 0, webhook_base: str = ""
) -> Iterator[Process]:
    """The Stripe emulator over HTTP (`python -m <EMULATOR_MODULE>`), with the test accounts' keys."""
    port = free_port()
    accounts = [
        f"{cur}:{keys['secret_key']}:{keys['publishable_key']}:{keys['webhook_secret']}"
        for cur, keys in settings.STRIPE_ACCOUNTS.items()
    ]
    command = [sys.executable, "-m", EMULATOR_MODULE, "--port", str(port), "--latency-ms", str(latency_ms)]
    command += [arg for account in accounts for arg in ("--account", account)]
    if webhook_base:
        command += ["--webhook-base", webhook_base, "--enabled-events", ",".join(events.HANDLED)]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, log, base, f"{base}/healthz") as process:
        yield process


class TcpProxy:
    """A loopback TCP forwarder to `target`: `cut()` closes the listener and every open connection (the
    database is gone: new connections are refused, open ones break), `restore()` listens again on the same
    port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx itself is the answer


@dataclass
class Browser:
    """One shopper's cookies and CSRF token, over real HTTP."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    token: str = ""

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        timeout: float = 30,
        follow: bool = True,
        **headers: str,
    ) -> tuple[int, dict[str, str], str]:
        """`follow=False`: a redirect is the answer (its cookies kept), as a browser sees a login's."""
        hdrs = dict(headers)
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.token and method != "GET":
            hdrs["X-CSRFToken"] = self.token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as r:
                status, body, head = r.status, r.read(), r.headers
        except urllib.error.HTTPError as exc:
            status, body, head = exc.code, exc.read(), exc.headers
        for header in head.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            self.cookies.update({k: m.value for k, m in jar.items()})
        return status, {k.lower(): v for k, v in head.items()}, body.decode("utf-8", "replace")

    def open(self, path: str) -> str:
        status, _, html = self.request("GET", path, Accept="text/html")
        assert status == 200, (status, html[:300])
        marker = 'name="csrfmiddlewaretoken" value="'
        if marker in html:
            self.token = html.split(marker, 1)[1].split('"', 1)[0]
        return html

    def json(self, method: str, path: str, payload: Mapping[str, Any] | None = None, **headers: str) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        hdrs = {"Accept": "application/json", **headers}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        status, head, body = self.request(method, path, data, **hdrs)
        try:
            return status, head, json.loads(body)
        except ValueError:
            return status, head, body


class SmtpRelay(socketserver.ThreadingTCPServer):
    """A mail relay on 127.0.0.1 that keeps what it is sent: it answers a message's data after `delay` seconds
    (then accepts it)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.messages: list[bytes] = []
        self.connections = 0
        super().__init__(("127.0.0.1", 0), SmtpHandler)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def message_ids(self) -> list[bytes]:
        return [m.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in self.messages]


class SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpRelay

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.server.connections += 1
        self.reply("220 relay.test ESMTP")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command.startswith((b"EHLO", b"HELO")):
                self.reply("250 relay.test")
            elif command.startswith((b"MAIL", b"RCPT", b"RSET", b"NOOP")):
                self.reply("250 OK")
            elif command == b"DATA":
                self.reply("354 go ahead")
                body = b""
                while (chunk := self.rfile.readline()) and chunk != b".\r\n":
                    body += chunk
                time.sleep(self.server.delay)
                self.server.messages.append(body)
                self.reply(f"250 2.0.0 Ok: queued as Q{len(self.server.messages)}")
            elif command == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")
