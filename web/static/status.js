// Refreshes the status page every two seconds from /api/v1/status.
(function () {
  "use strict";
  function set(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }
  function refresh() {
    fetch("/api/v1/status").then(function (r) { return r.json(); }).then(function (s) {
      set("source", s.source ? s.source.name + " (" + s.source.kind + "): " + s.source.state : "none");
      set("model", s.model ? s.model.name + " v" + s.model.version + " (" + s.model.task + ")" : "no active model");
      set("backend", s.backend || "none");
      set("fps", String(s.fps));
      set("results", String(s.results));
      set("rows", s.store.enabled ? String(s.store.rows) : "logging off");
      set("drops", String(s.drops));
    }).catch(function () { set("fps", "appliance not answering"); });
  }
  setInterval(refresh, 2000);
})();
