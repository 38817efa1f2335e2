// "Send a new code": `button[data-resend-at]` is disabled until that Unix time, counting the
// seconds down in its label (`data-wait`, where %s is the number). Without JavaScript the button
// is always there and the service's own limits answer a resend too soon.
(function () {
  "use strict";
  document.querySelectorAll("button[data-resend-at]").forEach(function (button) {
    var at = parseInt(button.getAttribute("data-resend-at"), 10) * 1000;
    var wait = button.getAttribute("data-wait") || "%s";
    var label = button.textContent;
    function tick() {
      var left = Math.ceil((at - Date.now()) / 1000);
      if (left > 0) {
        button.disabled = true;
        button.textContent = wait.replace("%s", String(left));
        window.setTimeout(tick, 1000);
      } else {
        button.disabled = false;
        button.textContent = label;
      }
    }
    tick();
  });
})();
