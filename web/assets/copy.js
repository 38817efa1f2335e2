// Copy buttons: `button[data-copy-target]` copies the value of the element whose id it names.
// The buttons are hidden without JavaScript (the value is in a read-only field to select).
"use strict";
document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
  var target = document.getElementById(button.getAttribute("data-copy-target"));
  if (!target || !navigator.clipboard) {
    return;
  }
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
