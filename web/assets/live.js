// The audit page's live mode: when "Live" is ticked, events recorded from now on arrive as
// Server-Sent Events, each an HTML fragment the server rendered (and escaped), and are put at
// the top of the timeline. Without this file the page works with its Refresh link. Loaded on
// every page: it binds when the audit page is shown (also after htmx swapped it in) and closes
// its stream when htmx swaps the page away.
(function () {
  "use strict";
  var source = null;
  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }
  function bind() {
    var control = document.querySelector("[data-live-control]");
    var box = document.getElementById("live");
    var timeline = document.querySelector("[data-timeline]");
    var status = document.querySelector("[data-live-status]");
    if (!control || !box || !timeline || !window.EventSource || box.hasAttribute("data-bound")) {
      return;
    }
    box.setAttribute("data-bound", "");
    control.hidden = false;
    box.addEventListener("change", function () {
      stop();
      if (!box.checked) {
        return;
      }
      source = new EventSource(box.getAttribute("data-live-src"));
      source.addEventListener("audit", function (e) {
        timeline.insertAdjacentHTML("afterbegin", e.data);
      });
      source.addEventListener("error", function () {
        // The stream ended (signed out, key revoked, server stopping): do not reconnect.
        stop();
        box.checked = false;
        if (status) {
          status.textContent = status.getAttribute("data-ended") || "";
        }
      });
    });
  }
  bind();
  document.addEventListener("htmx:beforeSwap", stop);
  document.addEventListener("htmx:afterSettle", bind);
})();
