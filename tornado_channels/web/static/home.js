/* Home page: open a channel by name. */
(function () {
  "use strict";

  var mainEl = document.getElementById("main");
  var formEl = document.getElementById("go");
  var inputEl = document.getElementById("channel");
  var errorEl = document.getElementById("go-error");
  var home = (mainEl && mainEl.getAttribute("data-home")) || "/";
  if (home.charAt(home.length - 1) !== "/") {
    home += "/";
  }

  function channelPath(name) {
    return name
      .trim()
      .split("/")
      .filter(function (segment) {
        return segment.length > 0;
      })
      .map(encodeURIComponent)
      .join("/");
  }

  formEl.addEventListener("submit", function (event) {
    event.preventDefault();
    var path = channelPath(inputEl.value);
    if (!path) {
      errorEl.textContent = "Type a channel name, like users/1.";
      errorEl.hidden = false;
      inputEl.focus();
      return;
    }
    errorEl.hidden = true;
    location.assign(home + path);
  });
})();
