// Both ways to pay on the item and order pages. No inline scripts (the Content Security Policy forbids them):
// everything the script needs comes from data attributes, and its words (in the page's language) from the
// `#pay-text` JSON block the server renders.
//
// The Payment Element is mounted in deferred mode (mode, amount, currency): nothing exists at Stripe until the
// shopper clicks Pay. Then: elements.submit() validates the card form, one request to the shop freezes the
// order and creates (or reuses) the PaymentIntent for it, and stripe.confirmPayment() confirms it with the
// client secret the shop answered. The amount the page showed travels with the request, so an order changed
// in another tab is refused by the shop instead of being charged a total the shopper did not see.
//
// What the shopper reads when something fails, as in Stripe's own samples: a card the bank refused or card
// details Stripe.js found wrong (`card_error`, `validation_error`) in Stripe's words; the shop's own refusals
// (a JSON `{"error": {"message"}}`, already in plain words and the shopper's language) as they are; anything
// else (the network, Stripe's API, an unexpected answer) as one generic message, with the details in the console.
//
// Without JavaScript none of this runs: the card form stays hidden (the page says it needs JavaScript) and
// "Pay on Stripe Checkout" is a plain form that the shop answers with a redirect to Checkout.
(function () {
  "use strict";

  var TEXT = {
    loading: "Loading the secure card form\u2026",
    processing: "Processing\u2026",
    redirecting: "Opening Stripe Checkout\u2026",
    no_stripe: "The card form could not load. You can pay on Stripe Checkout instead.",
    check_card: "Check your card details.",
    unreachable: "We could not reach the shop. Check your connection and try again.",
    generic: "Something went wrong and the payment was not made. Nothing was charged; please try again.",
    checkout_unavailable: "Stripe Checkout is not available right now. Please try again.",
  };
  var catalog = document.getElementById("pay-text");
  if (catalog) {
    try {
      var words = JSON.parse(catalog.textContent);
      Object.keys(words).forEach(function (key) { TEXT[key] = words[key]; });
    } catch (e) {
      console.error("pay.js: unreadable #pay-text", e);
    }
  }

  // How long ago this page was loaded, measured by the browser (its clock does not matter): the shop refuses a
  // click from a tab that did not see the item was bought in another tab meanwhile.
  function pageAge() {
    return String(Math.round(window.performance && performance.now ? performance.now() : 0));
  }

  function show(el, text) {
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // The shop's answer: {ok, data} for JSON; anything else (an HTML error page from a proxy, an empty body) is
  // an unexpected answer, shown as the generic message, its details in the console.
  async function askShop(url, init) {
    var response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      console.error("pay.js: the shop could not be reached", e);
      return { error: TEXT.unreachable };
    }
    var data = null;
    try {
      data = await response.json();
    } catch (e) {
      console.error("pay.js: unexpected answer from " + url + " (" + response.status + ")", e);
      return { error: TEXT.generic };
    }
    if (!response.ok) {
      if (data && data.error && typeof data.error.message === "string" && data.error.message) {
        return { error: data.error.message, refusal: data.error }; // the shop's own words
      }
      console.error("pay.js: unexpected answer from " + url + " (" + response.status + ")", data);
      return { error: TEXT.generic };
    }
    return { data: data };
  }

  // Stripe's errors in plain words: card errors as Stripe words them, the rest as the generic message.
  function stripeMessage(error) {
    if (error && (error.type === "card_error" || error.type === "validation_error") && error.message) {
      return error.message;
    }
    console.error("pay.js: Stripe error", error);
    return TEXT.generic;
  }

  var form = document.getElementById("payment-form");
  var checkoutForm = document.getElementById("checkout-form");
  var checkoutButton = document.getElementById("checkout-button");
  var payButton = document.getElementById("pay-button");
  var emailInput = document.getElementById("receipt-email");
  var payLabel = payButton && payButton.querySelector(".label");
  var payText = payLabel ? payLabel.textContent : "";
  var checkoutLabel = checkoutButton && checkoutButton.querySelector(".label");
  var checkoutText = checkoutLabel ? checkoutLabel.textContent : "";

  // While a payment is being confirmed nothing else can be changed or clicked: the button that was pressed shows
  // a spinner and says what is happening, and the card field (read-only), the email field and both buttons are
  // disabled.
  var paymentElement = null;
  var busy = false;
  function setBusy(state, which) {
    busy = state;
    [[payButton, payLabel, payText, TEXT.processing], [checkoutButton, checkoutLabel, checkoutText, TEXT.redirecting]]
      .forEach(function (entry) {
        var button = entry[0];
        if (!button) return;
        var pressed = state && button === which;
        button.disabled = state || (button === payButton && !ready);
        button.setAttribute("aria-busy", pressed ? "true" : "false");
        var spinner = button.querySelector(".spinner");
        if (spinner) spinner.hidden = !pressed;
        if (entry[1]) entry[1].textContent = pressed ? entry[3] : entry[2];
      });
    if (emailInput) emailInput.disabled = state;
    if (paymentElement && typeof paymentElement.update === "function") paymentElement.update({ readOnly: state });
  }
  var ready = false;

  // Stripe Checkout: the form asks the shop for the session as JSON and goes to its hosted page (the form itself,
  // sent without JavaScript, gets a redirect there from the shop; redirectToCheckout no longer exists).
  if (checkoutForm && checkoutButton) {
    checkoutForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (busy) return;
      var message = document.getElementById("checkout-message");
      show(message, "");
      setBusy(true, checkoutButton);
      var url = checkoutForm.getAttribute("action") + "?page_age_ms=" + pageAge();
      var answer = await askShop(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (answer.data && answer.data.url) {
        window.location.assign(answer.data.url);
        return; // stays busy until the browser leaves
      }
      if (answer.data) {
        console.error("pay.js: no Checkout URL in the shop's answer", answer.data);
        answer.error = TEXT.checkout_unavailable;
      }
      show(message, answer.error);
      setBusy(false);
    });
  }

  if (!form) return;
  form.hidden = false;
  var or = document.getElementById("pay-or");
  if (or) or.hidden = false;
  var message = document.getElementById("payment-message");
  var mountPoint = document.getElementById("payment-element");
  if (typeof window.Stripe !== "function") {
    console.error("pay.js: Stripe.js did not load");
    show(message, TEXT.no_stripe);
    return;
  }
  var loading = document.createElement("p");
  loading.className = "muted";
  loading.textContent = TEXT.loading;
  mountPoint.appendChild(loading);

  var locale = form.dataset.locale || "auto";
  var stripe = window.Stripe(form.dataset.publishableKey, { locale: locale });
  var elements = stripe.elements({
    mode: "payment",
    amount: Number(form.dataset.amount),
    currency: form.dataset.currency,
    locale: locale,
  });
  paymentElement = elements.create("payment");
  mountPoint.textContent = "";
  paymentElement.mount("#payment-element");
  paymentElement.on("ready", function () {
    ready = true;
    if (!busy) payButton.disabled = false;
  });

  // Ask the shop for the PaymentIntent of this order (created now, or the one already open for it).
  async function openIntent() {
    var body = new URLSearchParams({ expected_amount: form.dataset.amount, page_age_ms: pageAge() });
    if (emailInput && emailInput.value.trim()) body.set("receipt_email", emailInput.value.trim()); // Stripe's receipt, our confirmation
    var answer = await askShop(form.dataset.intentUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      credentials: "same-origin",
      body: body,
    });
    if (answer.data && !answer.data.client_secret) {
      console.error("pay.js: no client secret in the shop's answer", answer.data);
      return { error: TEXT.generic };
    }
    return answer.error ? answer : answer.data;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (busy || !ready) return;
    show(message, "");
    setBusy(true, payButton);
    try {
      var submitted = await elements.submit();
      if (submitted && submitted.error) {
        show(message, stripeMessage(submitted.error));
        return;
      }
      var intent = await openIntent();
      if (intent.error) {
        show(message, intent.error);
        return;
      }
      var result = await stripe.confirmPayment({
        elements: elements,
        clientSecret: intent.client_secret,
        confirmParams: { return_url: intent.return_url },
      });
      // Only reached when the payment could not be confirmed: a declined card, failed authentication, bad input,
      // or Stripe could not be reached.
      if (result && result.error) show(message, stripeMessage(result.error));
    } catch (e) {
      console.error("pay.js: the payment could not be completed", e);
      show(message, TEXT.generic);
    } finally {
      setBusy(false);
    }
  });
})();
