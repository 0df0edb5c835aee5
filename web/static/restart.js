// After "Restart now": wait until the appliance answers again, then go back to the dashboard.
(function () {
  "use strict";
  var box = document.getElementById("restarting");
  if (!box) { return; }
  var url = box.getAttribute("data-health-url");
  var status = document.getElementById("restart-status");
  var sawDown = false;
  var started = Date.now();
  function check() {
    fetch(url, { cache: "no-store" }).then(function (reply) {
      if (reply.ok && (sawDown || Date.now() - started > 8000)) { window.location.href = "/"; return; }
      if (!reply.ok) { sawDown = true; }
      window.setTimeout(check, 1000);
    }).catch(function () {
      sawDown = true;
      status.textContent = "Waiting for the appliance to come back…";
      window.setTimeout(check, 1000);
    });
  }
  window.setTimeout(check, 1000);
})();
