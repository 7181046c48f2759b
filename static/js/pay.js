// Both ways to pay on the item and order pages. No inline scripts (the Content Security Policy forbids them):
// everything the script needs comes from data attributes.
(function () {
  "use strict";

  function show(el, text) {
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (e) {
      return { error: { message: "The shop answered unexpectedly (" + response.status + "). Please try again." } };
    }
  }

  // Stripe Checkout: GET the session from the shop, then go to its hosted page (redirectToCheckout is gone).
  var checkoutButton = document.getElementById("checkout-button");
  if (checkoutButton) {
    checkoutButton.addEventListener("click", async function () {
      var message = document.getElementById("checkout-message");
      show(message, "");
      checkoutButton.disabled = true;
      try {
        var response = await fetch(checkoutButton.dataset.checkoutUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        var data = await readJson(response);
        if (response.ok && data.url) {
          window.location.assign(data.url);
          return;
        }
        show(message, (data.error && data.error.message) || "Checkout is not available right now.");
      } catch (e) {
        show(message, "We could not reach the shop. Check your connection and try again.");
      }
      checkoutButton.disabled = false;
    });
  }

  // The Payment Element: the shop creates (or reuses) the PaymentIntent, Stripe.js confirms it.
  var form = document.getElementById("payment-form");
  if (!form) return;
  var message = document.getElementById("payment-message");
  var button = document.getElementById("pay-button");
  if (typeof window.Stripe !== "function") {
    show(message, "The card form could not load. You can pay on Stripe Checkout instead.");
    document.getElementById("payment-element").textContent = "";
    return;
  }
  var stripe = window.Stripe(form.dataset.publishableKey);
  var elements = null;
  var returnUrl = "";

  async function start() {
    var response, data;
    try {
      response = await fetch(form.dataset.intentUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
        credentials: "same-origin",
      });
      data = await readJson(response);
    } catch (e) {
      response = null;
      data = { error: { message: "We could not reach the shop. Check your connection and reload the page." } };
    }
    if (!response || !response.ok || !data.client_secret) {
      document.getElementById("payment-element").textContent = "";
      show(message, (data.error && data.error.message) || "The card form is not available right now.");
      return;
    }
    returnUrl = data.return_url;
    elements = stripe.elements({ clientSecret: data.client_secret });
    var paymentElement = elements.create("payment");
    document.getElementById("payment-element").textContent = "";
    paymentElement.mount("#payment-element");
    button.disabled = false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (!elements) return;
    button.disabled = true;
    show(message, "");
    var result = await stripe.confirmPayment({ elements: elements, confirmParams: { return_url: returnUrl } });
    // Only reached when the payment could not be confirmed: a declined card, failed authentication, bad input.
    if (result && result.error) {
      show(message, result.error.message || "The payment did not go through.");
    }
    button.disabled = false;
  });

  start();
})();
