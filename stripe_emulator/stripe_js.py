"""The Stripe.js double served at ``/js/stripe.js`` (development/test-only; no real Stripe.js).

It implements the few calls the shop makes: ``Stripe(pk)``, ``elements({clientSecret})``,
``elements.create("payment")`` / ``mount`` / ``on``, ``elements.submit()``,
``confirmPayment({elements, confirmParams: {return_url}, redirect})`` and
``retrievePaymentIntent(clientSecret)``. The card number typed into ``#emulator-card-number``
is sent to ``POST /v1/payment_intents/{id}/confirm`` as ``payment_method_data[type]=card`` and
``payment_method_data[card][number]=<digits>``, authenticated with the publishable key plus
``client_secret`` (like Stripe.js does). A 3DS card shows the ``#emulator-3ds`` modal whose
buttons call ``POST /v1/payment_intents/{id}/emulator_authenticate`` with ``success=true|false``.
"""

from __future__ import annotations

import json

__all__ = ["render_stripe_js"]

_TEMPLATE = r"""/* Stripe.js double served by the local Stripe emulator
   (in-memory, not a payment processor). */
(function () {
  "use strict";
  var API_BASE = __API_BASE__;
  var AUTH_FAILURE = "We are unable to authenticate your payment method. " +
    "Please choose a different payment method and try again.";

  function integrationError(message) {
    var err = new Error(message);
    err.name = "IntegrationError";
    return err;
  }

  function intentIdFromSecret(clientSecret) {
    var i = typeof clientSecret === "string" ? clientSecret.indexOf("_secret_") : -1;
    return i > 0 ? clientSecret.slice(0, i) : null;
  }

  function encode(params) {
    var parts = [];
    Object.keys(params).forEach(function (key) {
      parts.push(encodeURIComponent(key).replace(/%5B/g, "[").replace(/%5D/g, "]") + "=" +
        encodeURIComponent(params[key]));
    });
    return parts.join("&");
  }

  function api(publishableKey, method, path, params) {
    var url = API_BASE + path;
    var init = { method: method, headers: { "Authorization": "Bearer " + publishableKey } };
    if (method === "GET") {
      url += "?" + encode(params);
    } else {
      init.headers["Content-Type"] = "application/x-www-form-urlencoded";
      init.body = encode(params);
    }
    return fetch(url, init).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }, function () {
      return { status: 0, body: { error: { type: "api_connection_error",
        message: "Could not reach the Stripe emulator at " + API_BASE } } };
    });
  }

  function redirectTo(returnUrl, intent) {
    var sep = returnUrl.indexOf("?") === -1 ? "?" : "&";
    window.location.assign(returnUrl + sep + "payment_intent=" + encodeURIComponent(intent.id) +
      "&payment_intent_client_secret=" + encodeURIComponent(intent.client_secret) +
      "&redirect_status=succeeded");
  }

  function showChallenge() {
    return new Promise(function (resolve) {
      var overlay = document.createElement("div");
      overlay.id = "emulator-3ds";
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-label", "3D Secure test authentication");
      overlay.style.cssText = "position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;" +
        "align-items:center;justify-content:center;z-index:2147483647;font-family:system-ui,sans-serif";
      var box = document.createElement("div");
      box.style.cssText = "background:#fff;border-radius:8px;padding:24px;max-width:360px;text-align:center";
      box.innerHTML = "<h2 style='margin-top:0'>3D Secure test payment</h2>" +
        "<p>Stripe emulator: complete or fail the authentication.</p>";
      var ok = document.createElement("button");
      ok.id = "emulator-3ds-complete";
      ok.type = "button";
      ok.textContent = "Complete authentication";
      var fail = document.createElement("button");
      fail.id = "emulator-3ds-fail";
      fail.type = "button";
      fail.textContent = "Fail authentication";
      fail.style.marginLeft = "8px";
      box.appendChild(ok);
      box.appendChild(fail);
      overlay.appendChild(box);
      document.body.appendChild(overlay);
      function done(success) {
        overlay.parentNode.removeChild(overlay);
        resolve(success);
      }
      ok.addEventListener("click", function () { done(true); });
      fail.addEventListener("click", function () { done(false); });
    });
  }

  function Stripe(publishableKey, options) {
    if (!(this instanceof Stripe)) { return new Stripe(publishableKey, options); }
    if (typeof publishableKey !== "string" || publishableKey.indexOf("pk_") !== 0) {
      throw integrationError("Invalid API Key provided: " + publishableKey +
        ". Stripe() needs a publishable key (pk_...).");
    }
    this._key = publishableKey;
    this._emulator = true;
  }

  Stripe.prototype.elements = function (options) {
    options = options || {};
    if (!options.clientSecret) {
      throw integrationError("elements(): the emulator double needs a clientSecret.");
    }
    var handlers = {};
    var state = { input: null, clientSecret: options.clientSecret };
    function fire(name, payload) {
      (handlers[name] || []).forEach(function (handler) { handler(payload); });
    }
    var elements = {
      _state: state,
      create: function (type) {
        if (type !== "payment") { throw integrationError("The emulator only supports the payment element."); }
        var element = {
          mount: function (target) {
            var host = typeof target === "string" ? document.querySelector(target) : target;
            if (!host) { throw integrationError("mount(): could not find " + target); }
            var wrapper = document.createElement("div");
            wrapper.className = "emulator-payment-element";
            var label = document.createElement("label");
            label.setAttribute("for", "emulator-card-number");
            label.textContent = "Card number";
            label.style.display = "block";
            var input = document.createElement("input");
            input.id = "emulator-card-number";
            input.name = "cardnumber";
            input.type = "text";
            input.inputMode = "numeric";
            input.autocomplete = "cc-number";
            input.placeholder = "4242 4242 4242 4242";
            input.style.cssText = "width:100%;padding:8px;font-size:16px;box-sizing:border-box";
            var note = document.createElement("small");
            note.className = "emulator-note";
            note.textContent = "Stripe emulator test card form (no real payments)";
            wrapper.appendChild(label);
            wrapper.appendChild(input);
            wrapper.appendChild(note);
            host.appendChild(wrapper);
            state.input = input;
            input.addEventListener("input", function () {
              var digits = input.value.replace(/\D/g, "");
              fire("change", { elementType: "payment", empty: digits.length === 0,
                complete: digits.length >= 16, value: { type: "card" } });
            });
            setTimeout(function () { fire("ready", { elementType: "payment" }); }, 0);
            return element;
          },
          on: function (name, handler) {
            (handlers[name] = handlers[name] || []).push(handler);
            return element;
          },
          off: function (name) { delete handlers[name]; return element; },
          unmount: function () {
            if (state.input && state.input.parentNode && state.input.parentNode.parentNode) {
              state.input.parentNode.parentNode.removeChild(state.input.parentNode);
            }
            state.input = null;
          },
          destroy: function () { element.unmount(); },
          focus: function () { if (state.input) { state.input.focus(); } },
          update: function () {}
        };
        return element;
      },
      submit: function () {
        var digits = state.input ? state.input.value.replace(/\D/g, "") : "";
        if (!digits) {
          return Promise.resolve({ error: { type: "validation_error", code: "incomplete_number",
            message: "Your card number is incomplete." } });
        }
        return Promise.resolve({});
      },
      update: function () {},
      fetchUpdates: function () { return Promise.resolve({}); }
    };
    return elements;
  };

  Stripe.prototype.retrievePaymentIntent = function (clientSecret) {
    var id = intentIdFromSecret(clientSecret);
    if (!id) { return Promise.reject(integrationError("Invalid clientSecret.")); }
    return api(this._key, "GET", "/v1/payment_intents/" + id, { client_secret: clientSecret })
      .then(function (res) {
        return res.status === 200 ? { paymentIntent: res.body } : { error: res.body.error };
      });
  };

  Stripe.prototype.confirmPayment = function (options) {
    var key = this._key;
    options = options || {};
    var elements = options.elements;
    var clientSecret = options.clientSecret || (elements && elements._state.clientSecret);
    var confirmParams = options.confirmParams || {};
    var redirect = options.redirect || "always";
    var id = intentIdFromSecret(clientSecret);
    if (!id) { return Promise.reject(integrationError("confirmPayment(): missing clientSecret.")); }
    if (redirect === "always" && !confirmParams.return_url) {
      return Promise.reject(integrationError("confirmPayment(): confirmParams.return_url is required."));
    }
    var digits = elements && elements._state.input ? elements._state.input.value.replace(/\D/g, "") : "";
    if (!digits) {
      return Promise.resolve({ error: { type: "validation_error", code: "incomplete_number",
        message: "Your card number is incomplete." } });
    }
    var params = { client_secret: clientSecret, "payment_method_data[type]": "card",
      "payment_method_data[card][number]": digits };
    if (confirmParams.return_url) { params.return_url = confirmParams.return_url; }

    function finish(intent) {
      if (intent.status === "succeeded" || intent.status === "processing") {
        if (redirect === "if_required") { return { paymentIntent: intent }; }
        redirectTo(confirmParams.return_url, intent);
        return new Promise(function () {});
      }
      if (intent.last_payment_error) {
        var e = intent.last_payment_error;
        return { error: { type: e.type || "card_error", code: e.code, decline_code: e.decline_code,
          message: e.message, payment_intent: intent } };
      }
      return { error: { type: "invalid_request_error", message: "Unexpected status " + intent.status,
        payment_intent: intent } };
    }

    return api(key, "POST", "/v1/payment_intents/" + id + "/confirm", params).then(function (res) {
      if (res.status !== 200) { return { error: res.body.error }; }
      var intent = res.body;
      if (intent.status !== "requires_action") { return finish(intent); }
      return showChallenge().then(function (success) {
        return api(key, "POST", "/v1/payment_intents/" + id + "/emulator_authenticate",
          { client_secret: clientSecret, success: success ? "true" : "false" });
      }).then(function (authRes) {
        if (authRes.status !== 200) { return { error: authRes.body.error }; }
        var authed = authRes.body;
        if (authed.status === "succeeded") { return finish(authed); }
        return { error: { type: "card_error", code: "payment_intent_authentication_failure",
          message: AUTH_FAILURE, payment_intent: authed } };
      });
    });
  };

  window.Stripe = Stripe;
})();
"""


def render_stripe_js(api_base: str) -> str:
    """The double's source with ``api_base`` (e.g. ``http://127.0.0.1:12111``) baked in."""
    return _TEMPLATE.replace("__API_BASE__", json.dumps(api_base.rstrip("/")))
