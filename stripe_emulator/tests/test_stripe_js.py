"""The Stripe.js double, driven by node: card and deferred-intent flows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.tests.helpers import (
    USD,
    http_get,
)

_NODE_DRIVER = r"""
const fs = require("fs");
const [jsPath, pk, secretsJson] = process.argv.slice(2);
const secrets = JSON.parse(secretsJson);

function El(tag) {
  this.tagName = tag; this.children = []; this.style = {}; this.listeners = {};
  this.attrs = {}; this.parentNode = null; this.value = ""; this.id = "";
}
El.prototype.appendChild = function (c) { c.parentNode = this; this.children.push(c); return c; };
El.prototype.removeChild = function (c) {
  this.children = this.children.filter((x) => x !== c);
  c.parentNode = null;
};
El.prototype.setAttribute = function (k, v) { this.attrs[k] = v; };
El.prototype.addEventListener = function (t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); };
El.prototype.dispatch = function (t) { (this.listeners[t] || []).forEach((f) => f({})); };
El.prototype.focus = function () {};
function find(node, id) {
  if (node.id === id) return node;
  for (const c of node.children) { const f = find(c, id); if (f) return f; }
  return null;
}
const body = new El("body");
const host = new El("div"); host.id = "payment-element"; body.appendChild(host);
const redirects = [];
global.window = { location: { assign: (url) => redirects.push(url) } };
global.document = {
  body, currentScript: null,
  createElement: (t) => new El(t),
  querySelector: (sel) => find(body, sel.replace(/^#/, "")),
};
eval(fs.readFileSync(jsPath, "utf8"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function mount(secret) {
  body.children = [host]; host.children = [];
  const stripe = window.Stripe(pk);
  const elements = stripe.elements({ clientSecret: secret, appearance: {} });
  const el = elements.create("payment");
  const seen = [];
  el.on("ready", () => seen.push("ready"));
  el.on("change", (e) => seen.push("change:" + e.complete));
  el.mount("#payment-element");
  await sleep(5);
  return { stripe, elements, seen };
}

async function pay(secret, card, button) {
  const { stripe, elements, seen } = await mount(secret);
  const input = find(body, "emulator-card-number");
  const out = { placeholder: input.placeholder, emptySubmit: await elements.submit() };
  input.value = card; input.dispatch("input");
  out.submit = await elements.submit();
  out.seen = seen;
  const before = redirects.length;
  const confirmParams = { return_url: "http://shop.test/return?o=1" };
  const pending = stripe.confirmPayment({ elements, confirmParams });
  if (button) {
    for (let i = 0; i < 200 && !find(body, "emulator-3ds"); i++) await sleep(10);
    out.modal = !!find(body, "emulator-3ds");
    find(body, button).dispatch("click");
  }
  const result = await Promise.race([pending, sleep(400).then(() => "pending")]);
  out.result = result;
  out.redirect = redirects.length > before ? redirects[redirects.length - 1] : null;
  out.retrieved = (await stripe.retrievePaymentIntent(secret)).paymentIntent.status;
  return out;
}

(async () => {
  const results = {
    ok: await pay(secrets.ok, "4242 4242 4242 4242"),
    declined: await pay(secrets.declined, "4000000000009995"),
    threeDsOk: await pay(secrets.threeDsOk, "4000002500003155", "emulator-3ds-complete"),
    threeDsFail: await pay(secrets.threeDsFail, "4000002500003155", "emulator-3ds-fail"),
  };
  const wrongKey = window.Stripe(pk.replace("usd", "eur"));
  results.wrongKey = await wrongKey.retrievePaymentIntent(secrets.ok);
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _run_stripe_js_driver(
    server: str, tmp_path: Path, script: str, names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a node `script` against the served Stripe.js double, with one fresh PaymentIntent's client secret per
    name; what the script printed (JSON), and the PaymentIntents by name."""
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    pis = {name: sc.v1.payment_intents.create(params={"amount": 1234, "currency": "usd"}) for name in names}
    js = tmp_path / "stripe.js"
    js.write_text(http_get(f"{server}/js/stripe.js")[2])
    driver = tmp_path / "driver.js"
    driver.write_text(script)
    secrets_json = json.dumps({name: pi.client_secret for name, pi in pis.items()})
    proc = subprocess.run(
        ["node", str(driver), str(js), USD.publishable_key, secrets_json],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)), pis


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_stripe_js_double_flows(emu: Emulator, server: str, tmp_path: Path) -> None:
    out, pis = _run_stripe_js_driver(
        server, tmp_path, _NODE_DRIVER, ("ok", "declined", "threeDsOk", "threeDsFail")
    )

    ok = out["ok"]
    assert ok["placeholder"] == "4242 4242 4242 4242"
    assert ok["emptySubmit"]["error"]["message"] == "Your card number is incomplete."
    assert ok["submit"] == {}
    assert ok["seen"] == ["ready", "change:true"]
    pi_ok = pis["ok"]
    assert ok["redirect"] == (
        f"http://shop.test/return?o=1&payment_intent={pi_ok.id}"
        f"&payment_intent_client_secret={pi_ok.client_secret}&redirect_status=succeeded"
    )
    assert ok["retrieved"] == "succeeded"

    declined = out["declined"]
    assert declined["redirect"] is None
    assert declined["result"]["error"]["type"] == "card_error"
    assert declined["result"]["error"]["decline_code"] == "insufficient_funds"
    assert declined["retrieved"] == "requires_payment_method"

    assert out["threeDsOk"]["modal"] is True
    assert out["threeDsOk"]["redirect"].endswith("redirect_status=succeeded")
    assert out["threeDsOk"]["retrieved"] == "succeeded"

    fail = out["threeDsFail"]["result"]["error"]
    assert (fail["type"], fail["code"]) == ("card_error", "payment_intent_authentication_failure")
    assert out["threeDsFail"]["redirect"] is None

    assert out["wrongKey"]["error"]["code"] == "resource_missing"
    assert [e["type"] for e in emu.events["usd"]].count("payment_intent.succeeded") == 2


_NODE_DEFERRED = (
    _NODE_DRIVER.split("async function mount")[0]
    + r"""
async function deferred(opts, card, steps) {
  body.children = [host]; host.children = [];
  const stripe = window.Stripe(pk, { locale: "fr" });
  const elements = stripe.elements(Object.assign({ mode: "payment", appearance: {} }, opts));
  elements.create("payment").mount("#payment-element");
  await sleep(5);
  const input = find(body, "emulator-card-number");
  const out = { calls: [] };
  const realFetch = global.fetch;
  global.fetch = (url, init) => { out.calls.push((init && init.method) + " " + url.split("?")[0]); return realFetch(url, init); };
  try {
    out.emptySubmit = await elements.submit();
    input.value = "1234"; input.dispatch("input");
    out.invalidSubmit = await elements.submit();
    input.value = card; input.dispatch("input");
    if (steps.update) { elements.update(steps.update); }
    if (steps.submit !== false) { out.submit = await elements.submit(); }
    const before = redirects.length;
    out.result = await Promise.race([
      stripe.confirmPayment({ elements, clientSecret: steps.secret,
        confirmParams: { return_url: "http://shop.test/return", receipt_email: "shopper@example.com" } }),
      sleep(400).then(() => "pending"),
    ]);
    out.redirect = redirects.length > before ? redirects[redirects.length - 1] : null;
  } finally {
    global.fetch = realFetch;
  }
  out.retrieved = (await stripe.retrievePaymentIntent(steps.secret)).paymentIntent;
  return out;
}

(async () => {
  const results = {
    ok: await deferred({ amount: 1234, currency: "usd", locale: "en" }, "4242424242424242", { secret: secrets.ok }),
    noSubmit: await deferred({ amount: 1234, currency: "usd" }, "4242424242424242",
      { secret: secrets.noSubmit, submit: false }),
    amountDiffers: await deferred({ amount: 1000, currency: "usd" }, "4242424242424242", { secret: secrets.amount }),
    currencyDiffers: await deferred({ amount: 1234, currency: "eur" }, "4242424242424242",
      { secret: secrets.currency }),
    updated: await deferred({ amount: 1000, currency: "usd" }, "4242424242424242",
      { secret: secrets.updated, update: { amount: 1234 } }),
    declined: await deferred({ amount: 1234, currency: "usd" }, "4000000000000002", { secret: secrets.declined }),
  };
  let thrown = null;
  try { window.Stripe(pk).elements({ mode: "payment", currency: "usd" }); } catch (e) { thrown = e.name + ": " + e.message; }
  results.missingAmount = thrown;
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
"""
)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_stripe_js_double_deferred_intent_flow(emu: Emulator, server: str, tmp_path: Path) -> None:
    out, pis = _run_stripe_js_driver(
        server, tmp_path, _NODE_DEFERRED, ("ok", "noSubmit", "amount", "currency", "updated", "declined")
    )

    ok = out["ok"]
    assert ok["emptySubmit"]["error"] == {
        "type": "validation_error",
        "code": "incomplete_number",
        "message": "Your card number is incomplete.",
    }
    assert ok["invalidSubmit"]["error"] == {
        "type": "validation_error",
        "code": "invalid_number",
        "message": "Your card number is invalid.",
    }
    assert ok["submit"] == {}
    assert ok["redirect"] == (
        f"http://shop.test/return?payment_intent={pis['ok'].id}"
        f"&payment_intent_client_secret={pis['ok'].client_secret}&redirect_status=succeeded"
    )
    assert ok["retrieved"]["status"] == "succeeded"
    assert ok["retrieved"]["receipt_email"] == "shopper@example.com"

    # Refused, nothing confirmed: no submit, or a PaymentIntent for another amount or currency.
    assert out["noSubmit"]["result"]["error"]["message"].startswith("elements.submit() must be called before")
    assert out["noSubmit"]["calls"] == []
    for name in ("amountDiffers", "currencyDiffers"):
        assert "does not match" in out[name]["result"]["error"]["message"]
        assert out[name]["redirect"] is None
        assert out[name]["retrieved"]["status"] == "requires_payment_method"
        assert not [c for c in out[name]["calls"] if c.startswith("POST")]
    # elements.update({amount}) brings the deferred amount up to date.
    assert out["updated"]["retrieved"]["status"] == "succeeded"

    declined = out["declined"]
    assert declined["result"]["error"]["decline_code"] == "generic_decline"
    assert declined["redirect"] is None
    assert out["missingAmount"].startswith("IntegrationError: elements(): amount must be")
    assert emu.get(pis["ok"].id)["receipt_email"] == "shopper@example.com"
