"""English and Russian: how the language is chosen (the switch's cookie, Accept-Language), the cached pages kept
per language, shopper messages and amounts in the shopper's language, and the translation files themselves
(every marked string translated, the committed .mo compiled from the committed .po)."""

from __future__ import annotations

import gettext
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import translation
from stripe.params.checkout import SessionCreateParams

from catalog.tests.factories import make_item
from core import pagecache
from core.money import display_money, display_percent
from payments.checkout import STRIPE_LOCALES, stripe_locale_for

NBSP = "\xa0"
PO = Path(settings.BASE_DIR) / "locale" / "ru" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
RU = {"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9,en;q=0.8"}


# ------------------------------------------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("amount", "currency", "english", "russian"),
    [
        (8990, "eur", "€89.90", f"89,90{NBSP}€"),
        (2450, "usd", "$24.50", f"24,50{NBSP}$"),
        (150000, "usd", "$1,500.00", f"1{NBSP}500,00{NBSP}$"),
        (1500, "jpy", "¥1,500", f"1{NBSP}500{NBSP}¥"),  # zero-decimal
        (12500, "kwd", f"KWD{NBSP}12.500", f"12,500{NBSP}KWD"),  # three decimals
        (10050, "all", f"ALL{NBSP}100.50", f"100,50{NBSP}ALL"),  # Stripe's two decimals, not CLDR's none
        (-500, "usd", "-$5.00", f"-5,00{NBSP}$"),
    ],
)
def test_amounts_are_written_for_the_shoppers_locale(amount, currency, english, russian) -> None:
    assert display_money(amount, currency, minor=True, locale="en") == english
    assert display_money(amount, currency, minor=True, locale="ru") == russian
    with translation.override("ru"):
        assert display_money(amount, currency, minor=True) == russian


def test_major_units_are_shown_exactly() -> None:
    assert display_money(Decimal("89.9"), "eur", locale="ru") == f"89,90{NBSP}€"
    assert display_money(Decimal("0.1"), "usd", locale="en") == "$0.10"


def test_rates_are_written_for_the_shoppers_locale() -> None:
    assert [display_percent(Decimal(r), locale="en") for r in ("20.0000", "2.5", "8.875")] == [
        "20%",
        "2.5%",
        "8.875%",
    ]
    assert display_percent(Decimal("8.875"), locale="ru") == f"8,875{NBSP}%"


def test_checkout_locales_are_stripes() -> None:
    literal = str(
        SessionCreateParams.__annotations__["locale"]
    )  # NotRequired["Literal['auto', 'bg', ...]|str"]
    assert all(f"'{code}'" in literal for code in STRIPE_LOCALES)
    assert (
        stripe_locale_for("ru"),
        stripe_locale_for("en"),
        stripe_locale_for("xx"),
        stripe_locale_for(None),
    ) == (
        "ru",
        "en",
        "auto",
        "auto",
    )


# ------------------------------------------------------------------------------------------------ choosing


@pytest.mark.django_db
def test_accept_language_picks_russian(client: Client, usd_item) -> None:
    response = client.get(f"/item/{usd_item.pk}", **RU)
    html = response.content.decode()
    assert response["Content-Language"] == "ru" and "Accept-Language" in response["Vary"]
    assert '<html lang="ru">' in html and "Оплата картой" in html
    assert f'<p class="price big" id="item-price">24,50{NBSP}$</p>' in html
    assert 'data-locale="ru"' in html  # Stripe.js is told the same language
    english = client.get(f"/item/{usd_item.pk}").content.decode()
    assert '<html lang="en">' in english and "Pay by card" in english and 'data-locale="en"' in english


@pytest.mark.django_db
def test_the_switch_sets_a_cookie_that_wins_over_accept_language(client: Client, usd_item) -> None:
    page = f"/item/{usd_item.pk}"
    response = client.post("/i18n/setlang/", {"language": "en", "next": page}, **RU)
    assert response.status_code == 302 and response["Location"] == page
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "en" and cookie["httponly"]
    assert '<html lang="en">' in client.get(page, **RU).content.decode()
    client.post("/i18n/setlang/", {"language": "ru", "next": page})
    assert '<html lang="ru">' in client.get(page).content.decode()


@pytest.mark.django_db
def test_the_switch_is_on_every_page_and_comes_back_to_it(client: Client, usd_item) -> None:
    for path in ("/", f"/item/{usd_item.pk}", "/orders/", "/no-such-page"):
        html = client.get(path).content.decode()
        assert 'action="/i18n/setlang/"' in html, path
        assert f'name="next" value="{path}"' in html, path
        assert 'name="csrfmiddlewaretoken"' in html and "csrf-token-of-this-visitor" not in html, path


@pytest.mark.django_db
def test_cached_pages_are_kept_per_language(client: Client, usd_item) -> None:
    name = f"item:{usd_item.pk}"
    english = client.get(f"/item/{usd_item.pk}").content.decode()
    russian = client.get(f"/item/{usd_item.pk}", **RU).content.decode()
    assert pagecache.cache.get(pagecache.key(name, "en")) is not None
    assert pagecache.cache.get(pagecache.key(name, "ru")) is not None
    assert "Add to order" in english and "Добавить в заказ" in russian
    again = client.get(f"/item/{usd_item.pk}", **RU).content.decode()
    assert without_token(again) == without_token(russian)  # from the cache, with this visit's CSRF token
    usd_item.name = "Decaf beans"
    usd_item.save()  # drops every language's render
    assert pagecache.cache.get(pagecache.key(name, "en")) is None
    assert pagecache.cache.get(pagecache.key(name, "ru")) is None
    assert "Decaf beans" in client.get(f"/item/{usd_item.pk}", **RU).content.decode()


def without_token(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


# ------------------------------------------------------------------------------------------------ messages


@pytest.mark.django_db
def test_refusals_speak_the_shoppers_language(client: Client, usd_item) -> None:
    response = client.post(
        "/cart/add", {"item_id": usd_item.pk, "quantity": 100}, HTTP_ACCEPT="application/json", **RU
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Количество должно быть целым числом от 1 до 99."
    english = client.post(
        "/cart/add", {"item_id": usd_item.pk, "quantity": 100}, HTTP_ACCEPT="application/json"
    )
    assert english.json()["error"]["message"] == "Quantity must be a whole number from 1 to 99."


@pytest.mark.django_db
def test_an_amount_stripe_refuses_is_explained_in_russian(client: Client) -> None:
    item = make_item("Sample", "0.30", "EUR")
    response = client.get(f"/buy/{item.pk}", **RU)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        f"Сумма 0,30{NBSP}€ меньше минимальной, которую можно списать в EUR: 0,50{NBSP}€."
    )


@pytest.mark.django_db
def test_error_pages_speak_the_shoppers_language(client: Client) -> None:
    html = client.get("/no-such-page", **RU).content.decode()
    assert '<html lang="ru">' in html and "Страница не найдена" in html and "favicon" in html


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 секунду"), (3, "3 секунды"), (5, "5 секунд"), (21, "21 секунду"), (44, "44 секунды")],
)
def test_russian_plurals(seconds: int, words: str) -> None:
    with translation.override("ru"):
        text = translation.ngettext(
            "Too many requests. Please wait %(seconds)d second and try again.",
            "Too many requests. Please wait %(seconds)d seconds and try again.",
            seconds,
        ) % {"seconds": seconds}
    assert text == f"Слишком много запросов. Подождите {words} и попробуйте снова."


# ------------------------------------------------------------------------------------------------ the files


def test_every_message_is_translated_and_the_mo_is_compiled_from_the_po() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f, locale="ru")
    untranslated = [
        m.id
        for m in catalog
        if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    assert untranslated == []
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)
    with MO.open("rb") as f:
        committed = gettext.GNUTranslations(f)

    # `python manage.py compilemessages` (or Babel, see README) was run after the last change of the .po.
    def messages(translations: gettext.GNUTranslations) -> dict[object, str]:
        return {k: v for k, v in translations._catalog.items() if k != ""}  # type: ignore[attr-defined]

    assert messages(committed) == messages(expected)
    assert committed._info["plural-forms"] == expected._info["plural-forms"]  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (apt-get install gettext)")
def test_every_marked_string_is_in_the_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """makemessages, run on a copy of the sources, finds no string that the committed catalog lacks."""
    root = Path(settings.BASE_DIR)
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "tests", "migrations", "*.sqlite3")
    for folder in ("core", "catalog", "payments", "templates"):
        shutil.copytree(root / folder, source / folder, ignore=ignore)
    out = tmp_path / "locale"
    (out / "ru" / "LC_MESSAGES").mkdir(parents=True)
    monkeypatch.chdir(source)
    with override_settings(LOCALE_PATHS=[str(out)]):
        call_command(
            "makemessages",
            locale=["ru"],
            no_obsolete=True,
            ignore_patterns=["templates/admin/*"],
            verbosity=0,
        )
    with (out / "ru" / "LC_MESSAGES" / "django.po").open("rb") as f:
        found = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(f) if m.id}
    with PO.open("rb") as f:
        committed = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(f) if m.id}
    assert len(found) > 150  # makemessages did read the sources
    assert found - committed == set(), "run makemessages -l ru and translate the new strings (README)"
    assert committed - found == set(), "strings no longer used: run makemessages -l ru --no-obsolete"


@pytest.mark.django_db
def test_the_admin_stays_in_english(admin_client: Client) -> None:
    html = admin_client.get("/admin/", **RU).content.decode()
    assert '<html lang="en"' in html and "Site administration" in html
    assert '<html lang="ru">' in admin_client.get("/", **RU).content.decode()  # the shop still speaks Russian


@pytest.mark.django_db
def test_an_order_keeps_the_language_it_is_paid_in_for_its_confirmation(client: Client, usd_item) -> None:
    from payments import receipts
    from payments.models import Order

    response = client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "ivan@example.com"}, **RU)
    assert response.status_code == 200
    order = Order.objects.get()
    assert order.language == "ru"
    email = receipts.message(order)
    assert email.subject == f"Ваш заказ {str(order.public_id)[:8]} подтверждён: 24,50{NBSP}$"
    assert "Espresso beans" in email.body and f"Итого    24,50{NBSP}$" in email.body
    client.post(f"/item/{usd_item.pk}/intent", HTTP_ACCEPT_LANGUAGE="en")  # paying again, in English
    order.refresh_from_db()
    assert order.language == "en" and receipts.message(order).subject.startswith("Your order")


@pytest.mark.django_db
def test_the_switch_on_an_answer_to_a_form_goes_back_to_the_catalog() -> None:
    client = Client(enforce_csrf_checks=True)
    html = client.post("/cart/add", {"item_id": 1}, HTTP_ACCEPT="text/html").content.decode()  # no CSRF token
    assert 'name="next" value="/"' in html and 'action="/i18n/setlang/"' in html


# ------------------------------------------------------------------------------------------------ punctuation

# Two marks where one belongs ("2026 year..", ",,", "!."), or a space before a mark. An ellipsis is one.
DOUBLED = re.compile(r"(?<!\.)\.\.(?!\.)|[,;:!?]\s*[.,;:!?]|\.\s*[,;:!?]|\s[.,;:!?](?![\w.])")


def translations() -> list[tuple[str, str]]:
    catalog = read_po(PO.open("rb"))
    pairs = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        pairs += [(str(ids[0]), str(s)) for s in strings]
    return pairs


def test_no_russian_string_doubles_its_punctuation() -> None:
    found = [(msgid, msgstr) for msgid, msgstr in translations() if DOUBLED.search(msgstr)]
    assert found == []
    assert DOUBLED.search("Оплачен 2 декабря 2026 г.. Спасибо!")  # noqa: RUF001  (what it catches)
    assert not DOUBLED.search("Загрузка… Готово. Да, нет; 24,50 $.")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_date_never_ends_in_a_full_stop_that_a_sentence_would_double(language: str) -> None:
    """Sentences end with a date ("Paid on 2 Dec 2026.", "Оплачен 02.12.2026."): no format may end in "."
    (Django's own long Russian one does). One format per language, whatever a page asks for."""
    from datetime import datetime

    from django.utils import formats

    moment = datetime(2026, 12, 2, 17, 51)
    with translation.override(language):
        written = {name: formats.date_format(moment, name) for name in ("DATE_FORMAT", "SHORT_DATE_FORMAT")}
        stamped = {n: formats.date_format(moment, n) for n in ("DATETIME_FORMAT", "SHORT_DATETIME_FORMAT")}
    assert set(written.values()) == {"2 Dec 2026" if language == "en" else "02.12.2026"}
    assert set(stamped.values()) == {"2 Dec 2026, 17:51" if language == "en" else "02.12.2026, 17:51"}
    assert not any(value.endswith(".") for value in [*written.values(), *stamped.values()])


@pytest.mark.django_db
def test_a_paid_order_its_email_and_its_list_write_one_date_in_russian(usd_item, stripe_fake) -> None:
    from django.core import mail

    from payments.models import Order
    from payments.tests.support import JSON, pay_item

    client = Client(**RU)
    order, _ = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    order = Order.objects.get(pk=order.pk)
    day = order.paid_at.astimezone().strftime("%d.%m.%Y") if settings.USE_TZ else ""
    page = client.get(f"/order/{order.public_id}").content.decode()
    listing = client.get("/orders/", **JSON).content.decode()
    [email] = mail.outbox
    assert f"Оплачен {day}. Спасибо!" in page
    assert f"оплачен {day}." in email.body
    assert day in listing
    for text in (page, email.body, listing):
        assert not DOUBLED.search(re.sub(r"<[^>]+>", " ", text).replace("...", "…")), text
