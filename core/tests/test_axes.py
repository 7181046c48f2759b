"""The admin login locks a username out at an address after repeated failures (django-axes): 429 with
Retry-After and the configured message, and a locked-out attempt never reaches password hashing. The same
account signs in from an address that has not failed; a username tried from many addresses, and one address
trying many usernames, are slowed by the login's rate limits."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.test import Client

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def lockout(settings: Any) -> Any:
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    return settings


@pytest.fixture
def staff(db: None) -> Any:
    return get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)


def login(client: Client, password: str, **extra: Any) -> Any:
    return client.post(
        "/admin/login/?next=/admin/", {"username": "boss", "password": password}, **{**HTML, **extra}
    )


def assert_locked(response: Any, settings: Any) -> None:
    assert response.status_code == 429, response.content[:300]
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert settings.AXES_COOLOFF_MESSAGE in response.content.decode()


def test_repeated_failures_lock_the_address_out_even_with_the_right_password(
    lockout: Any, staff: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(REMOTE_ADDR="203.0.113.10")
    assert [login(client, "wrong").status_code for _ in range(2)] == [200, 200]  # the form, with its error
    assert_locked(login(client, "wrong"), lockout)  # the limit reached

    hashed: list[str] = []
    real = ModelBackend.authenticate

    def counting(self: Any, request: Any, username: Any = None, password: Any = None, **kw: Any) -> Any:
        hashed.append(str(username))
        return real(self, request, username=username, password=password, **kw)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    assert_locked(login(client, PASSWORD), lockout)
    assert hashed == []  # refused before the password was checked: a flood costs no hashing
    assert client.get("/admin/").status_code == 302  # not logged in
    assert AccessAttempt.objects.filter(ip_address="203.0.113.10").exists()


def test_other_addresses_are_not_locked_out(lockout: Any, staff: Any) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.11")
    for _ in range(3):
        login(attacker, "wrong")
    assert_locked(login(attacker, "wrong"), lockout)
    staff_member = Client(REMOTE_ADDR="198.51.100.2")
    response = login(staff_member, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_success_before_the_limit_resets_the_count(lockout: Any, staff: Any) -> None:
    client = Client(REMOTE_ADDR="203.0.113.12")
    assert [login(client, "wrong").status_code for _ in range(2)] == [200, 200]
    assert login(client, PASSWORD).status_code == 302
    client.post("/admin/logout/")
    assert [login(client, "wrong").status_code for _ in range(2)] == [200, 200]  # counted from zero again


def test_behind_the_proxy_the_lockout_follows_the_client_address(lockout: Any, staff: Any) -> None:
    lockout.TRUSTED_PROXIES = ["127.0.0.1"]
    attacker = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.13")
    for _ in range(3):
        login(attacker, "wrong")
    assert_locked(login(attacker, PASSWORD), lockout)
    colleague = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.3")
    assert login(colleague, PASSWORD).status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.13"}


def test_a_script_gets_json(lockout: Any, staff: Any) -> None:
    client = Client(REMOTE_ADDR="203.0.113.14")
    for _ in range(3):
        client.post("/admin/login/", {"username": "boss", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "boss", "password": "wrong"})
    assert response.status_code == 429
    assert response.json()["error"] == {"code": "login_locked", "message": lockout.AXES_COOLOFF_MESSAGE}


def test_the_test_settings_leave_client_login_working(staff: Any) -> None:
    """Axes is off in the test settings: Client.login() (which passes no request) keeps working."""
    client = Client()
    assert client.login(username="boss", password=PASSWORD)
    assert client.get("/admin/").status_code == 200


# ------------------------------------------------------------------------------------------------ by username


def login_as(client: Client, username: str, password: str) -> Any:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **HTML)


def test_the_lockout_is_per_username_at_an_address(lockout: Any, staff: Any) -> None:
    """A username guessed at from one address is locked there; a colleague at the same address (one office,
    one NAT) still signs in, and so does the locked-out account from any address that has not failed."""
    colleague = get_user_model().objects.create_superuser("alice", "alice@example.com", PASSWORD)
    office = "203.0.113.20"
    for _ in range(3):
        login_as(Client(REMOTE_ADDR=office), "boss", "wrong")
    assert_locked(login_as(Client(REMOTE_ADDR=office), "boss", PASSWORD), lockout)
    response = login_as(Client(REMOTE_ADDR=office), colleague.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    response = login_as(Client(REMOTE_ADDR="198.51.100.20"), "boss", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert set(AccessAttempt.objects.values_list("username", "ip_address")) == {("boss", office)}


@pytest.fixture
def login_limits(lockout: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The rate limits on, with their default budgets, at the start of a calendar minute."""
    from django.core.cache import caches

    from core import ratelimit

    lockout.RATELIMIT_ENABLED = True
    monkeypatch.setattr(ratelimit, "clock", lambda: 1_900_000_020.5)
    caches["default"].clear()
    yield lockout
    caches["default"].clear()


def test_a_username_guessed_from_many_addresses_is_slowed(login_limits: Any, staff: Any) -> None:
    """Each address stays under the lockout's limit, yet the username's tries from all of them together are
    limited (RATELIMIT_LOGIN_PER_USERNAME, 5 a minute by default): the guesser gets 429 for that username."""
    from core.ratelimit import parse_rates

    [per_minute, *_] = parse_rates(login_limits.RATELIMITS["login"]["username"])
    answers = [
        login_as(Client(REMOTE_ADDR=f"203.0.113.{100 + n}"), "Boss", "wrong").status_code
        for n in range(per_minute.limit + 3)
    ]
    assert answers == [200] * per_minute.limit + [429] * 3
    assert not AccessAttempt.objects.filter(failures_since_start__gte=2).exists()  # no address was locked
    other = login_as(Client(REMOTE_ADDR="203.0.113.99"), "somebody-else", "wrong")
    assert other.status_code == 200  # other usernames are not slowed
    assert Client().get("/admin/login/").status_code == 200  # the form itself is never limited


def test_one_address_trying_many_usernames_is_limited(login_limits: Any, staff: Any) -> None:
    from core.ratelimit import parse_rates

    [per_minute, *_] = parse_rates(login_limits.RATELIMITS["login"]["address"])
    client = Client(REMOTE_ADDR="203.0.113.30")
    answers = [login_as(client, f"user{n}", "wrong").status_code for n in range(per_minute.limit + 2)]
    assert answers == [200] * per_minute.limit + [429] * 2
