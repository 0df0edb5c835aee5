// Shared behaviour for every page: confirmations, copy-friendly token fields, live-refreshing panels.
(function () {
  "use strict";

  // <form data-confirm="Question?">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // <input data-select-on-focus>: select the whole value (tokens shown once).
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // A summary of form errors gets the focus, so keyboard and screen-reader users land on it.
  var errors = document.getElementById("config-errors");
  if (errors) { errors.focus(); }

  // <div data-poll-url="/x" data-poll-ms="2000">: replace the content with the fragment at /x.
  document.querySelectorAll("[data-poll-url]").forEach(function (box) {
    var url = box.getAttribute("data-poll-url");
    var every = parseInt(box.getAttribute("data-poll-ms"), 10) || 2000;
    var busy = false;
    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (reply) {
        if (reply.status === 401) { window.location.reload(); return null; }
        return reply.ok ? reply.text() : null;
      }).then(function (html) {
        if (html !== null && html !== undefined) { box.innerHTML = html; box.removeAttribute("data-stale"); }
      }).catch(function () {
        box.setAttribute("data-stale", "true");
      }).then(function () { busy = false; });
    }
    window.setInterval(refresh, every);
  });
})();
