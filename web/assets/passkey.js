// Passkeys on the hosted pages. A `form[data-passkey]` carries a ceremony's options (JSON with
// binary fields in base64url) in `data-options`: "create" registers a credential, "get" signs
// in with one. Submitting the form runs the ceremony in the browser and posts its answer in the
// form's `[data-passkey-answer]` field with the rest of the form (the CSRF token, "trust this
// browser"). Without JavaScript or WebAuthn the button stays hidden and the
// `[data-passkey-unsupported]` words stay shown. A failed ceremony posts nothing: the words
// for it are shown and the button may be pressed again (the challenge is not spent).
(function () {
  "use strict";
  var supported =
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
    !!navigator.credentials;

  // NotAllowedError: cancelled, timed out, or no credential of this user on the device.
  // SecurityError: the page is not under the relying party's rpId.
  // InvalidStateError: the authenticator already holds one of the user's credentials.
  function wordsFor(error, failure) {
    var name = failure && failure.name;
    var which = "data-failed";
    if (name === "NotAllowedError" || name === "AbortError") {
      which = "data-cancelled";
    } else if (name === "SecurityError") {
      which = "data-wrong-site";
    } else if (name === "InvalidStateError") {
      which = "data-exists";
    }
    return error.getAttribute(which) || error.getAttribute("data-failed");
  }

  function ceremony(kind, options) {
    if (kind === "create") {
      return navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
      });
    }
    return navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
  }

  function bind(form) {
    var answer = form.querySelector("[data-passkey-answer]");
    var error = form.querySelector("[data-passkey-error]");
    var button = form.querySelector("button[type=submit]");
    var unsupported = form.querySelector("[data-passkey-unsupported]");
    if (!supported || !answer || !error || !button) {
      return;
    }
    if (unsupported) {
      unsupported.hidden = true;
    }
    button.hidden = false;
    var running = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (running) {
        return;
      }
      running = true;
      error.hidden = true;
      new Promise(function (resolve) {
        resolve(ceremony(form.getAttribute("data-passkey"), JSON.parse(form.getAttribute("data-options"))));
      })
        .then(function (credential) {
          if (!credential) {
            throw new Error("no credential");
          }
          answer.value = JSON.stringify(credential.toJSON());
          // Not requestSubmit: this listener would run the ceremony again.
          form.submit();
        })
        .catch(function (failure) {
          running = false;
          error.textContent = wordsFor(error, failure);
          error.hidden = false;
        });
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(bind);
})();
