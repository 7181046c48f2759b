"""`make run` (python -m core.devserver): the shop and, in demo mode, the emulator; SIGTERM or Ctrl+C stops
everything it started; a busy port is a clear error and a non-zero exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
