"""The Stripe.js double served at ``/js/stripe.js`` (development/test-only; no real Stripe.js).

It implements the calls the shop makes, the way Stripe.js answers them:

- ``Stripe(pk, {locale?})``: the card field speaks the locale (``en`` or ``ru`` here; ``auto`` is the browser's),
  its wrapper carries it as ``lang`` and ``data-locale`` (tests read what the page asked for), and the validation
  and card errors Stripe.js reports come in that language, as Stripe.js localizes them;
- ``stripe.elements({clientSecret})`` (an existing PaymentIntent) or the *deferred intent* form
  ``stripe.elements({mode: "payment", amount, currency, locale?, appearance?, paymentMethodCreation?})``,
  which mounts the Payment Element before any PaymentIntent exists; ``elements.update({amount, currency})``;
- ``elements.create("payment")`` / ``mount`` / ``on("ready"|"change")`` / ``update({readOnly})`` (a read-only
  card field while the page waits, as the Payment Element's option);
- ``elements.submit()``: validates the card field first (``{error}`` for an empty or invalid number, the
  ``validation_error`` Stripe.js gives: "Your card number is incomplete." / "Your card number is invalid.");
- ``stripe.confirmPayment({elements, clientSecret?, confirmParams: {return_url, receipt_email?}, redirect?})``.
  In deferred mode it refuses, confirming nothing, when ``elements.submit()`` was not called first or when
  the PaymentIntent's amount or currency differs from the ones the elements were created (or updated) with;
- ``stripe.retrievePaymentIntent(clientSecret)``.

The card number typed into ``#emulator-card-number`` is sent to ``POST /v1/payment_intents/{id}/confirm`` as
``payment_method_data[card][number]``, authenticated with the publishable key plus ``client_secret`` (as
Stripe.js does). A 3DS card shows the ``#emulator-3ds`` modal whose buttons call
``POST /v1/payment_intents/{id}/emulator_authenticate`` with ``success=true|false``. After a successful
confirmation the browser goes to ``return_url`` with ``payment_intent``, ``payment_intent_client_secret`` and
``redirect_status`` (``succeeded``, ``processing`` or ``failed``, from the PaymentIntent's status).
"""

from __future__ import annotations

import json

__all__ = ["render_stripe_js"]

_TEMPLATE = r"""/* Stripe.js double served by the local Stripe emulator
   (in-memory, not a payment processor). */
(function () {
  "use strict";
  var API_BASE = __API_BASE__;
  /* What the card field and Stripe.js's errors say, per locale (Stripe.js localizes both). */
  var WORDS = {
    en: {
      card_number: "Card number",
      note: "Stripe emulator test card form (no real payments)",
      incomplete_number: "Your card number is incomplete.",
      invalid_number: "Your card number is invalid.",
      auth_failure: "We are unable to authenticate your payment method. " +
        "Please choose a different payment method and try again.",
      challenge_title: "3D Secure test payment",
      challenge_text: "Stripe emulator: complete or fail the authentication.",
      complete: "Complete authentication",
      fail: "Fail authentication"
    },
    ru: {
      card_number: "\u041d\u043e\u043c\u0435\u0440 \u043a\u0430\u0440\u0442\u044b",
      note: "\u0422\u0435\u0441\u0442\u043e\u0432\u0430\u044f \u0444\u043e\u0440\u043c\u0430 \u044d\u043c\u0443\u043b\u044f\u0442\u043e\u0440\u0430 Stripe (\u0431\u0435\u0437 \u043d\u0430\u0441\u0442\u043e\u044f\u0449\u0438\u0445 \u043f\u043b\u0430\u0442\u0435\u0436\u0435\u0439)",
      incomplete_number: "\u041d\u043e\u043c\u0435\u0440 \u043a\u0430\u0440\u0442\u044b \u0432\u0432\u0435\u0434\u0451\u043d \u043d\u0435 \u043f\u043e\u043b\u043d\u043e\u0441\u0442\u044c\u044e.",
      invalid_number: "\u041d\u0435\u0432\u0435\u0440\u043d\u044b\u0439 \u043d\u043e\u043c\u0435\u0440 \u043a\u0430\u0440\u0442\u044b.",
      auth_failure: "\u041d\u0435 \u0443\u0434\u0430\u043b\u043e\u0441\u044c \u043f\u043e\u0434\u0442\u0432\u0435\u0440\u0434\u0438\u0442\u044c \u0441\u043f\u043e\u0441\u043e\u0431 \u043e\u043f\u043b\u0430\u0442\u044b. " +
        "\u0412\u044b\u0431\u0435\u0440\u0438\u0442\u0435 \u0434\u0440\u0443\u0433\u043e\u0439 \u0441\u043f\u043e\u0441\u043e\u0431 \u0438 \u043f\u043e\u043f\u0440\u043e\u0431\u0443\u0439\u0442\u0435 \u0441\u043d\u043e\u0432\u0430.",
      challenge_title: "\u0422\u0435\u0441\u0442\u043e\u0432\u044b\u0439 \u043f\u043b\u0430\u0442\u0451\u0436 3D Secure",
      challenge_text: "\u042d\u043c\u0443\u043b\u044f\u0442\u043e\u0440 Stripe: \u043f\u043e\u0434\u0442\u0432\u0435\u0440\u0434\u0438\u0442\u0435 \u0438\u043b\u0438 \u043e\u0442\u043a\u043b\u043e\u043d\u0438\u0442\u0435 \u043f\u0440\u043e\u0432\u0435\u0440\u043a\u0443.",
      complete: "\u041f\u043e\u0434\u0442\u0432\u0435\u0440\u0434\u0438\u0442\u044c",
      fail: "\u041e\u0442\u043a\u043b\u043e\u043d\u0438\u0442\u044c"
    }
  };
  /* Decline messages Stripe.js shows in Russian, by decline code (the API answers English). */
  var DECLINES_RU = {
    insufficient_funds: "\u041d\u0430 \u043a\u0430\u0440\u0442\u0435 \u043d\u0435\u0434\u043e\u0441\u0442\u0430\u0442\u043e\u0447\u043d\u043e \u0441\u0440\u0435\u0434\u0441\u0442\u0432.",
    generic_decline: "\u0412\u0430\u0448\u0430 \u043a\u0430\u0440\u0442\u0430 \u043e\u0442\u043a\u043b\u043e\u043d\u0435\u043d\u0430.",
    card_declined: "\u0412\u0430\u0448\u0430 \u043a\u0430\u0440\u0442\u0430 \u043e\u0442\u043a\u043b\u043e\u043d\u0435\u043d\u0430."
  };

  function resolveLocale(locale) {
    var browser = typeof navigator !== "undefined" && navigator.language ? navigator.language : "en";
    var wanted = (locale && locale !== "auto") ? locale : browser;
    var base = String(wanted).toLowerCase().split("-")[0];
    return WORDS[base] ? base : "en";
  }

  function words(locale) { return WORDS[resolveLocale(locale)]; }
  var SUBMIT_FIRST = "elements.submit() must be called before stripe.confirmPayment(). Call elements.submit() " +
    "as soon as your customer presses pay, prior to any asynchronous work.";

  function integrationError(message) {
    var err = new Error(message);
    err.name = "IntegrationError";
    return err;
  }

  function validationError(code, locale) {
    return { error: { type: "validation_error", code: code, message: words(locale)[code] } };
  }

  function intentIdFromSecret(clientSecret) {
    var i = typeof clientSecret === "string" ? clientSecret.indexOf("_secret_") : -1;
    return i > 0 ? clientSecret.slice(0, i) : null;
  }

  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2) { d = d * 2; if (d > 9) { d -= 9; } }
      sum += d;
    }
    return sum % 10 === 0;
  }

  /* The card field's problem, as Stripe.js reports it, or null when the number can be sent. */
  function cardProblem(raw, locale) {
    var digits = (raw || "").replace(/[\s-]/g, "");
    if (!digits) { return validationError("incomplete_number", locale); }
    if (!/^\d+$/.test(digits) || digits.length < 12 || digits.length > 19 || !luhn(digits)) {
      return validationError("invalid_number", locale);
    }
    return null;
  }

  /* A card error as Stripe.js words it in the locale (the API's English message otherwise). */
  function localizedCardMessage(error, locale) {
    if (resolveLocale(locale) !== "ru") { return error.message; }
    return DECLINES_RU[error.decline_code] || DECLINES_RU[error.code] || error.message;
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

  function redirectStatus(intent) {
    if (intent.status === "succeeded" || intent.status === "requires_capture") { return "succeeded"; }
    if (intent.status === "processing") { return "processing"; }
    return "failed";
  }

  function redirectTo(returnUrl, intent) {
    var sep = returnUrl.indexOf("?") === -1 ? "?" : "&";
    window.location.assign(returnUrl + sep + "payment_intent=" + encodeURIComponent(intent.id) +
      "&payment_intent_client_secret=" + encodeURIComponent(intent.client_secret) +
      "&redirect_status=" + redirectStatus(intent));
  }

  function showChallenge(locale) {
    var w = words(locale);
    return new Promise(function (resolve) {
      var overlay = document.createElement("div");
      overlay.id = "emulator-3ds";
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-label", "3D Secure test authentication");
      overlay.style.cssText = "position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;" +
        "align-items:center;justify-content:center;z-index:2147483647;font-family:system-ui,sans-serif";
      var box = document.createElement("div");
      box.style.cssText = "background:#fff;border-radius:8px;padding:24px;max-width:360px;text-align:center";
      var title = document.createElement("h2");
      title.style.marginTop = "0";
      title.textContent = w.challenge_title;
      var text = document.createElement("p");
      text.textContent = w.challenge_text;
      box.appendChild(title);
      box.appendChild(text);
      var ok = document.createElement("button");
      ok.id = "emulator-3ds-complete";
      ok.type = "button";
      ok.textContent = w.complete;
      var fail = document.createElement("button");
      fail.id = "emulator-3ds-fail";
      fail.type = "button";
      fail.textContent = w.fail;
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
    this._locale = (options && options.locale) || "auto";
    this._emulator = true;
  }

  function checkDeferred(options, partial) {
    if ("amount" in options || !partial) {
      if (typeof options.amount !== "number" || options.amount < 0 || Math.floor(options.amount) !== options.amount) {
        throw integrationError("elements(): amount must be a non-negative integer in the currency's minor unit.");
      }
    }
    if ("currency" in options || !partial) {
      if (typeof options.currency !== "string" || !/^[a-zA-Z]{3}$/.test(options.currency)) {
        throw integrationError("elements(): currency must be a three-letter ISO code.");
      }
    }
  }

  Stripe.prototype.elements = function (options) {
    options = options || {};
    var state = { input: null, clientSecret: null, deferred: false, submitted: false,
      locale: options.locale || this._locale, appearance: options.appearance || {} };
    if (options.clientSecret) {
      state.clientSecret = options.clientSecret;
    } else if (options.mode === "payment") {
      checkDeferred(options, false);
      state.deferred = true;
      state.amount = options.amount;
      state.currency = options.currency.toLowerCase();
      state.paymentMethodCreation = options.paymentMethodCreation || null;
    } else if (options.mode) {
      throw integrationError("elements(): the emulator double supports mode \"payment\" only.");
    } else {
      throw integrationError("elements(): pass either a clientSecret or mode, amount and currency.");
    }
    var handlers = {};
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
            wrapper.setAttribute("data-locale", state.locale);
            wrapper.setAttribute("lang", resolveLocale(state.locale));
            var label = document.createElement("label");
            label.setAttribute("for", "emulator-card-number");
            label.textContent = words(state.locale).card_number;
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
            note.textContent = words(state.locale).note;
            wrapper.appendChild(label);
            wrapper.appendChild(input);
            wrapper.appendChild(note);
            host.appendChild(wrapper);
            state.input = input;
            input.addEventListener("input", function () {
              state.submitted = false;
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
          update: function (options) {
            if (options && "readOnly" in options && state.input) {
              state.input.readOnly = !!options.readOnly;
              state.input.style.background = options.readOnly ? "#f6f9fc" : "";
              state.input.setAttribute("aria-readonly", options.readOnly ? "true" : "false");
            }
          }
        };
        return element;
      },
      submit: function () {
        var problem = cardProblem(state.input ? state.input.value : "", state.locale);
        state.submitted = !problem;
        return Promise.resolve(problem || {});
      },
      update: function (changes) {
        changes = changes || {};
        if (state.deferred) {
          checkDeferred(changes, true);
          if ("amount" in changes) { state.amount = changes.amount; }
          if ("currency" in changes) { state.currency = changes.currency.toLowerCase(); }
        }
        if (changes.locale) { state.locale = changes.locale; }
        if (changes.appearance) { state.appearance = changes.appearance; }
      },
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
    if (!elements || !elements._state) {
      return Promise.reject(integrationError("confirmPayment(): pass the elements the Payment Element uses."));
    }
    var state = elements._state;
    var clientSecret = options.clientSecret || state.clientSecret;
    var confirmParams = options.confirmParams || {};
    var redirect = options.redirect || "always";
    var id = intentIdFromSecret(clientSecret);
    if (!id) { return Promise.reject(integrationError("confirmPayment(): missing clientSecret.")); }
    if (redirect === "always" && !confirmParams.return_url) {
      return Promise.reject(integrationError("confirmPayment(): confirmParams.return_url is required."));
    }
    if (state.deferred && !state.submitted) {
      return Promise.resolve({ error: { type: "invalid_request_error", message: SUBMIT_FIRST } });
    }
    var problem = cardProblem(state.input ? state.input.value : "", state.locale);
    if (problem) { return Promise.resolve(problem); }
    var digits = state.input.value.replace(/[\s-]/g, "");
    var params = { client_secret: clientSecret, "payment_method_data[type]": "card",
      "payment_method_data[card][number]": digits };
    if (confirmParams.return_url) { params.return_url = confirmParams.return_url; }
    if (confirmParams.receipt_email) { params.receipt_email = confirmParams.receipt_email; }

    function finish(intent) {
      if (intent.status === "succeeded" || intent.status === "processing") {
        if (redirect === "if_required") { return { paymentIntent: intent }; }
        redirectTo(confirmParams.return_url, intent);
        return new Promise(function () {});
      }
      if (intent.last_payment_error) {
        var e = intent.last_payment_error;
        return { error: { type: e.type || "card_error", code: e.code, decline_code: e.decline_code,
          message: localizedCardMessage(e, state.locale), payment_intent: intent } };
      }
      return { error: { type: "invalid_request_error", message: "Unexpected status " + intent.status,
        payment_intent: intent } };
    }

    function confirm() {
      return api(key, "POST", "/v1/payment_intents/" + id + "/confirm", params).then(function (res) {
        if (res.status !== 200) {
          var err = res.body.error || {};
          if (err.type === "card_error") { err.message = localizedCardMessage(err, state.locale); }
          return { error: err };
        }
        var intent = res.body;
        if (intent.status !== "requires_action") { return finish(intent); }
        return showChallenge(state.locale).then(function (success) {
          return api(key, "POST", "/v1/payment_intents/" + id + "/emulator_authenticate",
            { client_secret: clientSecret, success: success ? "true" : "false" });
        }).then(function (authRes) {
          if (authRes.status !== 200) { return { error: authRes.body.error }; }
          var authed = authRes.body;
          if (authed.status === "succeeded") { return finish(authed); }
          return { error: { type: "card_error", code: "payment_intent_authentication_failure",
            message: words(state.locale).auth_failure, payment_intent: authed } };
        });
      });
    }

    if (!state.deferred) { return confirm(); }
    // Deferred intent: the PaymentIntent must be for what the Payment Element showed, or nothing is confirmed.
    return api(key, "GET", "/v1/payment_intents/" + id, { client_secret: clientSecret }).then(function (res) {
      if (res.status !== 200) { return { error: res.body.error }; }
      var intent = res.body;
      if (intent.amount !== state.amount || intent.currency !== state.currency) {
        return { error: { type: "invalid_request_error", code: "payment_intent_unexpected_state",
          message: "The PaymentIntent's amount (" + intent.amount + " " + intent.currency + ") does not match " +
            "the amount the Elements instance was created with (" + state.amount + " " + state.currency + "). " +
            "Call elements.update() with the new amount and currency, then elements.submit() again.",
          payment_intent: intent } };
      }
      return confirm();
    });
  };

  window.Stripe = Stripe;
})();
"""


def render_stripe_js(api_base: str) -> str:
    """The double's source with ``api_base`` (e.g. ``http://127.0.0.1:12111``) baked in."""
    return _TEMPLATE.replace("__API_BASE__", json.dumps(api_base.rstrip("/")))
