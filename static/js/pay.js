// Both ways to pay on the item and order pages. No inline scripts (the Content Security Policy forbids them):
// everything the script needs comes from data attributes.
//
// The Payment Element is mounted in deferred mode (mode, amount, currency): nothing exists at Stripe until the
// shopper clicks Pay. Then: elements.submit() validates the card form, one request to the shop freezes the
// order and creates (or reuses) the PaymentIntent for it, and stripe.confirmPayment() confirms it with the
// client secret the shop answered. The amount the page showed travels with the request, so an order changed
// in another tab is refused by the shop instead of being charged a total the shopper did not see.
(function () {
  "use strict";

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

  async function readJson(response) {
    try {
      return await response.json();
    } catch (e) {
      return { error: { message: "The shop answered unexpectedly (" + response.status + "). Please try again." } };
    }
  }

  var form = document.getElementById("payment-form");
  var checkoutButton = document.getElementById("checkout-button");
  var payButton = document.getElementById("pay-button");

  // While a payment is being confirmed nothing else can be clicked: the Pay button shows a spinner, and the
  // card form and the Checkout button are disabled.
  var paymentElement = null;
  function setBusy(busy) {
    if (payButton) {
      payButton.disabled = busy;
      payButton.setAttribute("aria-busy", busy ? "true" : "false");
      var spinner = payButton.querySelector(".spinner");
      if (spinner) spinner.hidden = !busy;
    }
    if (checkoutButton) checkoutButton.disabled = busy;
    if (paymentElement && typeof paymentElement.update === "function") paymentElement.update({ readOnly: busy });
  }

  // Stripe Checkout: GET the session from the shop, then go to its hosted page (redirectToCheckout is gone).
  if (checkoutButton) {
    checkoutButton.addEventListener("click", async function () {
      var message = document.getElementById("checkout-message");
      show(message, "");
      setBusy(true);
      try {
        var url = checkoutButton.dataset.checkoutUrl + "?page_age_ms=" + pageAge();
        var response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        var data = await readJson(response);
        if (response.ok && data.url) {
          window.location.assign(data.url);
          return;
        }
        show(message, (data.error && data.error.message) || "Checkout is not available right now.");
      } catch (e) {
        show(message, "We could not reach the shop. Check your connection and try again.");
      }
      setBusy(false);
    });
  }

  if (!form) return;
  var message = document.getElementById("payment-message");
  if (typeof window.Stripe !== "function") {
    show(message, "The card form could not load. You can pay on Stripe Checkout instead.");
    document.getElementById("payment-element").textContent = "";
    return;
  }
  var stripe = window.Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({
    mode: "payment",
    amount: Number(form.dataset.amount),
    currency: form.dataset.currency,
  });
  paymentElement = elements.create("payment");
  document.getElementById("payment-element").textContent = "";
  paymentElement.mount("#payment-element");
  paymentElement.on("ready", function () { payButton.disabled = false; });

  // Ask the shop for the PaymentIntent of this order (created now, or the one already open for it).
  async function openIntent() {
    var body = new URLSearchParams({ expected_amount: form.dataset.amount, page_age_ms: pageAge() });
    var email = form.querySelector("input[name=receipt_email]");
    if (email && email.value.trim()) body.set("receipt_email", email.value.trim()); // Stripe's receipt, our confirmation
    try {
      var response = await fetch(form.dataset.intentUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
        credentials: "same-origin",
        body: body,
      });
      var data = await readJson(response);
      if (response.ok && data.client_secret) return data;
      return { error: (data.error && data.error.message) || "The payment could not be started. Please try again." };
    } catch (e) {
      return { error: "We could not reach the shop. Check your connection and try again." };
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    show(message, "");
    setBusy(true);
    var submitted = await elements.submit();
    if (submitted && submitted.error) {
      show(message, submitted.error.message || "Check the card details.");
      setBusy(false);
      return;
    }
    var intent = await openIntent();
    if (intent.error) {
      show(message, intent.error);
      setBusy(false);
      return;
    }
    var result = await stripe.confirmPayment({
      elements: elements,
      clientSecret: intent.client_secret,
      confirmParams: { return_url: intent.return_url },
    });
    // Only reached when the payment could not be confirmed: a declined card, failed authentication, bad input.
    if (result && result.error) {
      show(message, result.error.message || "The payment did not go through.");
    }
    setBusy(false);
  });
})();
