"""One Stripe account per currency: the registry, the system check, and isolation between accounts."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from payments.accounts import AccountNotConfigured, AccountRegistry, StripeAccount, account_for, key_mode
from payments.checks import check_stripe_accounts
from payments.refunds import refund_order
from payments.tests.support import pay_item

USD_SK = "sk_test_usd_0000000000000000"
EUR_SK = "sk_test_eur_1111111111111111"


def keys(sk: str, pk: str, wh: str = "whsec_x") -> dict[str, str]:
    return {"secret_key": sk, "publishable_key": pk, "webhook_secret": wh}


def _account(secret_key: str) -> StripeAccount:
    return StripeAccount(
        currency="usd", secret_key=secret_key, publishable_key="pk_x", webhook_secret="whsec_x"
    )


def check_ids(accounts: dict[str, dict[str, str]], **extra: str) -> list[str]:
    with override_settings(STRIPE_ACCOUNTS=accounts, **extra):
        return sorted(m.id for m in check_stripe_accounts())


class TestSystemCheck:
    def test_the_test_configuration_is_clean(self) -> None:
        assert [m for m in run_checks() if m.id and m.id.startswith("payments.")] == []

    def test_no_account_is_a_warning(self) -> None:
        assert check_ids({}) == ["payments.W001"]

    def test_no_account_in_development_is_the_demo_and_no_warning(self) -> None:
        """`make admin` and commands run by hand beside `make run`'s demo (DEBUG on) print nothing about it."""
        assert check_ids({}, DEBUG=True) == []

    @pytest.mark.parametrize(
        "placeholder",
        [
            "sk_test_paste_your_usd_secret_key_here",  # .env.example's
            "sk_test_replace_with_usd_account_secret",
            "sk_test_...",
            "<your secret key>",
        ],
    )
    def test_a_placeholder_says_what_to_paste_where(self, placeholder: str) -> None:
        accounts = {"usd": keys(placeholder, "pk_test_paste_your_usd_publishable_key_here", "whsec_a")}
        with override_settings(STRIPE_ACCOUNTS=accounts):
            [message] = [m for m in check_stripe_accounts() if m.id == "payments.E006"]
        assert "STRIPE_USD_SECRET_KEY, STRIPE_USD_PUBLISHABLE_KEY still hold a placeholder" in message.msg
        assert "STRIPE_USD_SECRET_KEY: its secret key (Dashboard > Developers > API keys) (sk_test_...)" in (
            message.hint or ""
        )

    @pytest.mark.parametrize(
        "key",
        [
            "sk_test_51Nx8gHLkdIwHu7ixYourAbcPasteHere0123",  # letters of words inside a key are not words
            "sk_test_usd_0000000000000000",
            "sk_test_demo_usd_51DemoShopUSD",
        ],
    )
    def test_a_real_key_is_never_taken_for_a_placeholder(self, key: str) -> None:
        assert "payments.E006" not in check_ids({"usd": keys(key, "pk_test_b", "whsec_b")})

    def test_incomplete_keypair(self) -> None:
        assert "payments.E001" in check_ids({"usd": keys("sk_test_a", "")})

    def test_malformed_keys(self) -> None:
        assert "payments.E002" in check_ids({"usd": keys("pk_test_a", "sk_test_a")})

    def test_test_and_live_keys_mixed_in_one_account(self) -> None:
        assert "payments.E003" in check_ids({"usd": keys("sk_live_a", "pk_test_a")})

    def test_test_and_live_accounts_mixed(self) -> None:
        ids = check_ids(
            {
                "usd": keys("sk_live_a", "pk_live_a", "whsec_a"),
                "eur": keys("sk_test_b", "pk_test_b", "whsec_b"),
            }
        )
        assert "payments.E003" in ids

    def test_one_key_for_two_currencies(self) -> None:
        ids = check_ids(
            {
                "usd": keys("sk_test_same", "pk_test_a", "whsec_a"),
                "eur": keys("sk_test_same", "pk_test_b", "whsec_b"),
            }
        )
        assert "payments.E004" in ids

    def test_live_keys_pointed_at_another_api(self) -> None:
        ids = check_ids(
            {"usd": keys("sk_live_a", "pk_live_a", "whsec_a")}, STRIPE_API_BASE="http://127.0.0.1:12111"
        )
        assert "payments.E005" in ids

    def test_a_restricted_live_key_is_live_too(self) -> None:
        ids = check_ids(
            {"usd": keys("rk_live_a", "pk_live_a", "whsec_a")}, STRIPE_API_BASE="http://127.0.0.1:12111"
        )
        assert "payments.E005" in ids and "payments.E003" not in ids
        assert "payments.E003" in check_ids({"usd": keys("rk_live_a", "pk_test_a")})


@pytest.mark.parametrize(
    ("key", "mode"),
    [
        ("sk_live_a", "live"),
        ("rk_live_a", "live"),
        ("pk_live_a", "live"),
        ("sk_test_a", "test"),
        ("rk_test_a", "test"),
        ("pk_test_a", "test"),
        ("whsec_a", None),
        ("sk_a", None),
        ("", None),
    ],
)
def test_one_reading_of_a_keys_mode(key: str, mode: str | None) -> None:
    assert key_mode(key) == mode
    account = AccountRegistry({"usd": _account(key)}).get("usd") if key else None
    assert account is None or account.livemode == (mode == "live")


class TestRegistry:
    def test_each_currency_has_its_own_client_built_once(self) -> None:
        usd, eur = account_for("usd"), account_for("EUR")
        assert usd.secret_key == USD_SK and eur.secret_key == EUR_SK
        assert usd.client is account_for("usd").client
        assert usd.client is not eur.client

    def test_timeout_and_retries_come_from_settings(self) -> None:
        with override_settings(
            STRIPE_ACCOUNTS={"usd": keys(USD_SK, "pk_test_x")},
            STRIPE_TIMEOUT=4.5,
            STRIPE_MAX_NETWORK_RETRIES=3,
        ):
            acct = AccountRegistry.from_settings().get("usd")
            assert acct.timeout == 4.5 and acct.max_network_retries == 3
            requestor = acct.client._requestor  # the SDK's own settings
            assert requestor._options.max_network_retries == 3
            assert requestor._client._timeout == 4.5

    def test_unknown_currency(self) -> None:
        with pytest.raises(AccountNotConfigured):
            account_for("gbp")


@pytest.fixture
def no_bulkhead(settings: Any) -> None:
    """Shoppers at once as if on many processes: this process's bulkhead (payments/bulkhead.py, its own tests in
    test_bulkhead.py) would refuse all but a few."""
    settings.STRIPE_CONCURRENCY = 0


@pytest.mark.django_db
class TestIsolation:
    def test_buy_uses_only_the_account_of_the_item_currency(
        self, client, usd_item, eur_item, stripe_fake
    ) -> None:
        assert client.get(f"/buy/{eur_item.pk}").status_code == 200
        assert {r.api_key for r in stripe_fake.requests} == {EUR_SK}
        stripe_fake.requests.clear()
        assert client.get(f"/buy/{usd_item.pk}").status_code == 200
        assert {r.api_key for r in stripe_fake.requests} == {USD_SK}

    @pytest.mark.django_db(transaction=True)
    def test_accounts_stay_apart_across_threads(self, no_bulkhead, usd_item, eur_item, stripe_fake) -> None:
        if connection.vendor == "sqlite":
            pytest.skip(
                "concurrent writers need PostgreSQL; SQLite serialises them (runs in CI on PostgreSQL)"
            )
        errors: list[BaseException] = []
        items = [usd_item, eur_item] * 6

        def buy(item) -> None:
            try:
                response = Client().get(f"/buy/{item.pk}")
                assert response.status_code == 200, response.content
                session = stripe_fake.emulator.get(response.json()["id"])
                assert session["currency"] == item.currency
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=buy, args=(item,)) for item in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        sessions = stripe_fake.calls("POST", "/v1/checkout/sessions")
        assert len(sessions) == 12
        for call in sessions:
            currency = call.params["line_items"][0]["price_data"]["currency"]
            assert call.api_key == {"usd": USD_SK, "eur": EUR_SK}[currency]


@pytest.mark.django_db
def test_no_payment_path_sets_the_global_api_key(client, usd_item, eur_item, stripe_fake) -> None:
    """Every Stripe call goes through its account's own client: paying by the card form (a PaymentIntent) and
    by Checkout, the webhooks, a refund and the reconcile command leave `stripe.api_key` unset, so that no
    call can fall back to another account's key."""
    import stripe

    assert stripe.api_key is None
    order, _ = pay_item(client, stripe_fake, usd_item)
    pay_item(Client(), stripe_fake, eur_item, checkout=True)
    refund_order(order, requested_by="staff")
    call_command("reconcile_payments", "--older-than", "0", stdout=io.StringIO())
    made = {r.path.split("?")[0].rstrip("/") for r in stripe_fake.requests}
    assert {"/v1/payment_intents", "/v1/checkout/sessions", "/v1/refunds"} <= made, made
    assert stripe.api_key is None
