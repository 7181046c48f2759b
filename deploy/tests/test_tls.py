"""TLS in front of the shop, the two ways README's "Going live" offers, tested as far as this machine allows
(no Docker engine here):

- compose's `nginx` profile serves https itself: deploy/nginx-tls.conf included into deploy/nginx.conf, with a
  certificate of yours or a self-signed one that deploy/nginx-selfsigned.sh makes on the first start. The
  script runs here as the image's entrypoint would run it, and Debian's nginx serves the real gunicorn with the
  two files (only paths and ports changed): https answers, plain http is redirected to https, and the shop
  sees the requests as https (production settings redirect anything else).
- behind a TLS proxy you already run, without the profile: gunicorn as compose's `web` runs it trusts the
  proxy's X-Forwarded-Proto, so a forwarded https request is served and a request without it is redirected.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.tests import live

DEPLOY = Path(__file__).resolve().parent.parent
SCRIPT = DEPLOY / "nginx-selfsigned.sh"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
needs_nginx = pytest.mark.skipif(
    NGINX is None or not Path("/etc/nginx/mime.types").is_file() or shutil.which("openssl") is None,
    reason="needs Debian's nginx and openssl (deploy/smoke.sh installs nginx)",
)


def make_certificate(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """deploy/nginx-selfsigned.sh, as the nginx image's entrypoint runs it, writing into `folder`."""
    return subprocess.run(
        ["sh", str(SCRIPT)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TLS_CERTS_PATH": str(folder), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def certificate_names(certificate: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(certificate), "-noout", "-subject", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


# ------------------------------------------------------------------------------------------------ the certificate


@needs_openssl
def test_the_first_start_makes_a_self_signed_certificate_for_the_sites_host_once(tmp_path: Path) -> None:
    first = make_certificate(tmp_path, SITE_URL="https://shop.example.com:8443/")
    assert "made a self-signed one for shop.example.com" in first.stdout
    names = certificate_names(tmp_path / "fullchain.pem")
    assert "CN = shop.example.com" in names and "DNS:shop.example.com" in names
    assert oct((tmp_path / "privkey.pem").stat().st_mode & 0o777) == "0o600"
    made = (tmp_path / "fullchain.pem").read_bytes()
    again = make_certificate(tmp_path, SITE_URL="https://shop.example.com")  # a restart: the same certificate
    assert "TLS certificate found" in again.stdout
    assert (tmp_path / "fullchain.pem").read_bytes() == made


@needs_openssl
def test_a_certificate_of_yours_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "fullchain.pem").write_text("yours\n")
    (tmp_path / "privkey.pem").write_text("yours too\n")
    assert "TLS certificate found" in make_certificate(tmp_path).stdout
    assert (tmp_path / "fullchain.pem").read_text() == "yours\n"


@needs_openssl
def test_without_a_site_url_the_certificate_is_for_localhost(tmp_path: Path) -> None:
    make_certificate(tmp_path)
    assert "DNS:localhost" in certificate_names(tmp_path / "fullchain.pem")


# ------------------------------------------------------------------------------------------------ compose's files


def test_compose_nginx_serves_tls_with_your_certificates_or_a_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    nginx = compose["services"]["nginx"]
    assert "./nginx-tls.conf:/etc/nginx/shop-tls/tls.conf:ro" in nginx["volumes"]
    assert "${TLS_CERTS_DIR:-tls-certs}:/etc/nginx/certs" in nginx["volumes"]
    assert "tls-certs" in compose["volumes"]
    assert nginx["environment"]["SITE_URL"] == "${SITE_URL:-}"
    assert nginx["network_mode"] == "host"  # ports 80 and 443 of the host


def test_the_nginx_image_runs_the_certificate_script_first() -> None:
    from deploy.tests.test_deploy_files import dockerfile_stages, dockerignored

    _base, steps = dockerfile_stages()["nginx"]
    flat = [f"{keyword} {rest}" for keyword, rest in steps]
    assert "RUN apk add --no-cache openssl" in flat
    assert (
        "COPY --chmod=755 deploy/nginx-selfsigned.sh /docker-entrypoint.d/15-shop-selfsigned-cert.sh" in flat
    )
    assert not dockerignored("deploy/nginx-selfsigned.sh")  # in the build context
    assert os.access(SCRIPT, os.X_OK)


def test_deploy_nginx_conf_includes_the_tls_file_where_compose_mounts_it() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    assert "include /etc/nginx/shop-tls/*.conf;" in text
    tls = (DEPLOY / "nginx-tls.conf").read_text()
    assert "listen 443 ssl http2;" in tls and "return 301 https://$host$request_uri;" in tls


# ------------------------------------------------------------------------------------------------ for real


def site_config(work: Path, app_port: int, http_port: int, https_port: int, certs: Path) -> Path:
    """deploy/nginx.conf and deploy/nginx-tls.conf with only their paths and ports changed (as smoke.sh does),
    inside the main file a Debian server has."""
    tls_dir = work / "shop-tls"
    tls_dir.mkdir()
    (tls_dir / "tls.conf").write_text(
        (DEPLOY / "nginx-tls.conf")
        .read_text()
        .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
        .replace("listen [::]:443 ssl http2;", "")
        .replace("/etc/nginx/certs/", f"{certs}/")
    )
    site = (
        (DEPLOY / "nginx.conf")
        .read_text()
        .replace("server 127.0.0.1:8000", f"server 127.0.0.1:{app_port}")
        .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
        .replace("listen [::]:80;", "")
        .replace("include /etc/nginx/shop-tls/*.conf;", f"include {tls_dir}/*.conf;")
        .replace("/var/log/nginx/access.log", str(work / "access.log"))
    )
    (work / "site.conf").write_text(site)
    user = "user root;" if os.getuid() == 0 else ""
    main = work / "nginx.conf"
    main.write_text(
        f"{user} worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{ include /etc/nginx/mime.types; client_body_temp_path {work}/cb; proxy_temp_path {work}/p;"
        f" fastcgi_temp_path {work}/f; uwsgi_temp_path {work}/u; scgi_temp_path {work}/s;"
        f" include {work}/site.conf; }}\n"
    )
    return main


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls-static")
    live.collect_static(root)
    return root


def https_get(port: int, path: str, certificate: Path, host: str = "localhost") -> tuple[int, dict[str, str]]:
    """A GET over https that trusts only `certificate` and checks it names `host`."""
    context = ssl.create_default_context(cafile=str(certificate))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host
    )
    conn.request("GET", path, headers={"Host": host, "Accept": "text/html"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def http_get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": "localhost", "Accept": "text/html", **headers})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


@pytest.fixture
def shop(static_root: Path, tmp_path: Path, usd_item: Any) -> Iterator[live.Process]:
    """gunicorn with production settings as compose runs `web` (https redirect on, proxies trusted)."""
    env = live.production_env(
        static_root,
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        SECURE_SSL_REDIRECT="1",
        FORWARDED_ALLOW_IPS="*",
        ALLOWED_HOSTS="localhost,127.0.0.1",
        SITE_URL="https://localhost",
    )
    # Ready when /healthz answers: the one path production settings do not redirect to https.
    with live.gunicorn(env, tmp_path / "gunicorn.log", ready="/healthz") as app:
        yield app


@needs_nginx
@pytest.mark.django_db(transaction=True)
def test_compose_nginx_serves_the_shop_over_https_and_redirects_http(
    tmp_path: Path, shop: live.Process
) -> None:
    assert NGINX is not None
    certs = tmp_path / "certs"
    make_certificate(certs)  # the first start: no certificate yet
    http_port, https_port = live.free_port(), live.free_port()
    app_port = int(shop.base.rsplit(":", 1)[1])
    main = site_config(tmp_path, app_port, http_port, https_port, certs)
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    with (tmp_path / "nginx.out").open("wb") as out:
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while refused(http_port) or refused(https_port):
            assert nginx.poll() is None and time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.1)
        status, headers = https_get(https_port, "/", tmp_path / "certs" / "fullchain.pem")
        assert status == 200  # the shop saw https (X-Forwarded-Proto) and served the page
        assert "max-age=" in headers.get("strict-transport-security", "")
        assert https_get(https_port, "/healthz", tmp_path / "certs" / "fullchain.pem")[0] == 200
        status, headers = http_get(http_port, "/item/1?x=1")
        assert status == 301 and headers["location"] == "https://localhost/item/1?x=1"
        # nginx's own redirect, before the app (which would answer /healthz over http)
        assert http_get(http_port, "/healthz")[1]["location"] == "https://localhost/healthz"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_you_run_the_forwarded_proto_is_believed(shop: live.Process) -> None:
    """Compose without the `nginx` profile: your proxy forwards to 127.0.0.1:8000 with X-Forwarded-Proto."""
    port = int(shop.base.rsplit(":", 1)[1])
    assert http_get(port, "/", **{"X-Forwarded-Proto": "https"})[0] == 200
    status, headers = http_get(port, "/")  # a proxy that does not say https: redirected again and again
    assert status == 301 and headers["location"].startswith("https://localhost/")
