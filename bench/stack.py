"""The production-like stack the benchmark measures, on 127.0.0.1: a fresh PostgreSQL database, the Stripe
emulator with an added latency per API call, and gunicorn with `deploy/gunicorn.conf.py` and production
settings (`bench.wsgi`: the shop plus the trivial `/bench/floor` view); for the flood, Debian's nginx in front
with `deploy/nginx.conf` (only its ports and paths changed, as deploy/smoke.sh does). Everything it starts is
stopped, and the database dropped, when the `Stack` context ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")

ACCOUNTS = {
    "usd": (
        "sk_test_bench_usd_0000000000000000",
        "pk_test_bench_usd_0000000000000000",
        "whsec_bench_usd_0000",
    ),
    "eur": (
        "sk_test_bench_eur_1111111111111111",
        "pk_test_bench_eur_1111111111111111",
        "whsec_bench_eur_1111",
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # the benchmark's own DDL


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    """SIGTERM to the process group (gunicorn's master and workers), SIGKILL after 20 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in 20 s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of one process, plus those of its reaped children when asked."""
    with contextlib.suppress(OSError, IndexError):
        fields = _proc_stat(pid)
        ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
        return ticks / Workers.TICKS
    return 0.0


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on this machine (the server's backends are its children)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("postgres", "postmaster"):
                    total += process_cpu(int(entry), children=True)
    return total


class Workers:
    """gunicorn's workers seen from /proc: peak memory (VmHWM of every child of the master, sampled twice a
    second, as workers are recycled after GUNICORN_MAX_REQUESTS) and CPU time (the live workers' plus what the
    master collected from the workers that exited)."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, master: int) -> None:
        self.master = master
        self.peak_kb = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def children(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    if int(_proc_stat(int(entry))[1]) == self.master:
                        pids.append(int(entry))
        return pids

    def cpu_seconds(self) -> float:
        """CPU (user + system) used by every worker so far, exited ones included (reaped by the master)."""
        reaped = process_cpu(self.master, children=True) - process_cpu(self.master)
        return reaped + sum(process_cpu(pid) for pid in self.children())

    def sample(self) -> None:
        for pid in self.children():
            self.pids.add(pid)
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()


class Stack:
    """`with Stack(db_name, latency_ms, say) as stack:` the database, the emulator and gunicorn, ready."""

    def __init__(self, db_name: str, latency_ms: int, say: Any) -> None:
        self.db_name = db_name
        self.latency_ms = latency_ms
        self.say = say
        self.work = Path(tempfile.mkdtemp(prefix="shop-bench-"))
        self.app_port = free_port()
        self.emu_port = free_port()
        while self.emu_port == self.app_port:
            self.emu_port = free_port()
        self.base = f"http://127.0.0.1:{self.app_port}"
        self.emu_base = f"http://127.0.0.1:{self.emu_port}"
        self.db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
        self.env = self._environment()
        self.emulator: subprocess.Popen[bytes] | None = None
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.edge = ""  # nginx's base URL, once started
        self.workers: Workers | None = None
        self._db_created = False
        self.failed = False

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STRIPE_", "RATELIMIT_", "REDIS_"))
            and k.lower() not in ("debug", "secret_key")
        }
        env.update(
            {
                "ENV_FILE": str(self.work / "no.env"),
                "DJANGO_SETTINGS_MODULE": "bench.settings",
                "PYTHONUNBUFFERED": "1",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "DEBUG": "0",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "SITE_URL": self.base,  # required with DEBUG off
                # Every simulated shopper comes from 127.0.0.1 and repeats its request far faster than a person:
                # the per-address and per-session limits would refuse the throughput scenarios. The flood
                # scenario restarts the app with them on and gives each honest shopper an address of its own.
                "RATELIMIT_ENABLED": "0",
                "SECURE_SSL_REDIRECT": "0",
                "SESSION_COOKIE_SECURE": "0",
                "CSRF_COOKIE_SECURE": "0",
                "DATABASE_URL": self.db_url,
                "STRIPE_CURRENCIES": ",".join(ACCOUNTS),
                "STRIPE_API_BASE": self.emu_base,
                "STRIPE_JS_URL": f"{self.emu_base}/js/stripe.js",
                "GUNICORN_BIND": f"127.0.0.1:{self.app_port}",
                "BENCH_STATIC_ROOT": str(self.work / "static"),
            }
        )
        for cur, (sk, pk, wh) in ACCOUNTS.items():
            env[f"STRIPE_{cur.upper()}_SECRET_KEY"] = sk
            env[f"STRIPE_{cur.upper()}_PUBLISHABLE_KEY"] = pk
            env[f"STRIPE_{cur.upper()}_WEBHOOK_SECRET"] = wh
        return env

    def gunicorn_size(self) -> tuple[int, int]:
        """(workers, threads) as gunicorn will read them from deploy/gunicorn.conf.py, with this environment."""
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return int(conf["workers"]), int(conf["threads"])

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.failed = True
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.failed = self.failed or kind is not None
        self.close()

    def _start(self) -> None:
        self.say(f"database {self.db_name}")
        admin_sql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
        admin_sql(f"CREATE DATABASE {self.db_name}")
        self._db_created = True
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["seed_demo"]):
            self.say("manage.py " + " ".join(command))
            subprocess.run(  # noqa: S603
                [PYTHON, "manage.py", *command], env=self.env, cwd=ROOT, check=True, capture_output=True
            )
        # The endpoint listens to what the shop handles, as README's deploy section asks of the dashboard.
        events = (
            subprocess.run(  # noqa: S603
                [PYTHON, "manage.py", "webhook_events", "--comma"],
                env=self.env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .strip()
            .splitlines()[-1]  # the list is the last line (log lines may come first)
        )
        self.say(f"emulator on :{self.emu_port} (latency {self.latency_ms} ms per API call)")
        accounts = [f"{c}:{sk}:{pk}:{wh}" for c, (sk, pk, wh) in ACCOUNTS.items()]
        self.emulator = subprocess.Popen(  # noqa: S603
            [PYTHON, "-m", "stripe_emulator", "--port", str(self.emu_port), "--webhook-base", self.base]
            + [a for acct in accounts for a in ("--account", acct)]
            + ["--latency-ms", str(self.latency_ms), "--enabled-events", events],
            env=self.env,
            cwd=ROOT,
            stdout=(self.work / "emulator.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.emu_base}/healthz", self.emulator, "emulator")
        self.start_app()

    def start_app(self, **overrides: str) -> None:
        """(Re)start gunicorn, with these environment variables on top of the stack's."""
        if self.workers is not None:
            self.workers.stop()
        stop(self.gunicorn, "gunicorn")
        env = {**self.env, **overrides}
        workers, threads = self.gunicorn_size()
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        self.say(
            f"gunicorn on :{self.app_port} ({workers} workers x {threads} threads){' ' + shown if shown else ''}"
        )
        self.gunicorn = subprocess.Popen(  # noqa: S603
            [PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "bench.wsgi"],
            env=env,
            cwd=ROOT,
            stdout=(self.work / "gunicorn.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.base}/healthz", self.gunicorn, "gunicorn")
        self.workers = Workers(self.gunicorn.pid)

    def start_nginx(self) -> str:
        """nginx in front of gunicorn, with deploy/nginx.conf (its limits as in production); its base URL."""
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (make bench installs Debian's package)")
        port = free_port()
        while port in (self.app_port, self.emu_port):
            port = free_port()
        folder = self.work / "nginx"
        folder.mkdir(exist_ok=True)
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        for old, new in (
            ("server 127.0.0.1:8000", f"server 127.0.0.1:{self.app_port}"),
            ("listen 80;", f"listen 127.0.0.1:{port};"),
            ("listen [::]:80;", ""),
            ("/srv/shop/staticfiles/", str(self.work / "static") + "/"),
            ("access_log /var/log/nginx/access.log", f"access_log {self.work / 'nginx-access.log'}"),
        ):
            if old not in site:
                raise RuntimeError(f"deploy/nginx.conf no longer has {old!r}, which the benchmark rewrites")
            site = site.replace(old, new)
        (folder / "shop.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {folder / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\ndaemon off;\npid {folder / 'nginx.pid'};\n"
            f"error_log {self.work / 'nginx-error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
            f"http {{ include /etc/nginx/mime.types; default_type application/octet-stream; {temp} "
            f"include {folder / 'shop.conf'}; }}\n"
        )
        self.say(f"nginx on :{port} (deploy/nginx.conf)")
        self.nginx = subprocess.Popen(  # noqa: S603
            [
                binary,
                "-p",
                str(folder),
                "-c",
                str(folder / "nginx.conf"),
                "-e",
                str(self.work / "nginx-error.log"),
            ],
            cwd=ROOT,
            stdout=(self.work / "nginx-error.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.edge = f"http://127.0.0.1:{port}"
        wait_http(f"{self.edge}/healthz", self.nginx, "nginx")
        return self.edge

    def scalar(self, sql: str) -> int:
        import psycopg

        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of what shares the machine: the app's workers, the emulator, PostgreSQL, and this
        process's finished children (the load clients)."""
        assert self.workers is not None and self.emulator is not None
        clients = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "app": self.workers.cpu_seconds(),
            "emulator": process_cpu(self.emulator.pid),
            "postgres": postgres_cpu(),
            "client": clients.ru_utime + clients.ru_stime,
        }

    def stripe_objects(self, *kinds: str) -> int:
        """How many objects of these kinds (`payment_intent`, `checkout.session`) the emulator holds."""
        with urllib.request.urlopen(f"{self.emu_base}/_emulator/stats", timeout=10) as response:  # noqa: S310
            objects = json.loads(response.read())["objects"]
        return sum(int(objects.get(kind, 0)) for kind in kinds)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        stop(self.nginx, "nginx")
        stop(self.gunicorn, "gunicorn")
        stop(self.emulator, "emulator")
        if self._db_created:
            try:
                admin_sql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            except Exception as exc:
                print(f"could not drop {self.db_name}: {exc}", file=sys.stderr)
            self._db_created = False
        if self.failed:
            for log in ("gunicorn.log", "emulator.log", "nginx-error.log"):
                path = self.work / log
                if path.exists():
                    print(f"--- tail of {log} ---", file=sys.stderr)
                    print("\n".join(path.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        shutil.rmtree(self.work, ignore_errors=True)
