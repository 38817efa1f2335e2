// Copy buttons: `button[data-copy-target]` copies the value of the element whose id it names.
// The buttons are hidden without JavaScript (the value is in a read-only field to select).
// Run once the page is parsed and again after htmx swaps in a new page (boosted links and
// forms), binding each button once.
(function () {
  "use strict";
  function bind() {
    document.querySelectorAll("button[data-copy-target]:not([data-bound])").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target || !navigator.clipboard) {
        return;
      }
      button.setAttribute("data-bound", "");
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(target.value).then(function () {
          var done = button.getAttribute("data-copied");
          if (done) {
            button.textContent = done;
          }
        });
      });
    });
  }
  // A secret shown once (an issued key) is wiped when the page is left, so the browser's
  // back-forward cache cannot show it again.
  function wipe() {
    document.querySelectorAll("[data-secret]").forEach(function (field) {
      field.value = "";
    });
  }
  bind();
  document.addEventListener("htmx:afterSettle", bind);
  document.addEventListener("htmx:beforeSwap", wipe);
  window.addEventListener("pagehide", wipe);
})();
