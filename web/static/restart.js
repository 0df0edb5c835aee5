// After "Restart now": wait until a new server answers, then go back to the dashboard by itself.
// "Back" is any answer from /api/v1/health other than "starting" after the old server went away
// (an unhealthy appliance still comes back: the dashboard then shows why it is unhealthy).
(function () {
  "use strict";
  var box = document.getElementById("restarting");
  if (!box) { return; }
  var url = box.getAttribute("data-health-url");
  // post/redirect/get: the address bar now names the GET page, so a refresh never posts the restart again
  if (window.history && window.history.replaceState) { window.history.replaceState(null, "", "/restarting"); }
  var status = document.getElementById("restart-status");
  var sawDown = false;
  var started = Date.now();
  var POLL_MS = 500;
  var NEVER_DOWN_MS = 20000; // the restart was faster than our polls: go anyway

  function seconds() { return Math.round((Date.now() - started) / 1000); }

  function waiting() {
    sawDown = true;
    status.textContent = "Waiting for the appliance to come back… (" + seconds() + " s)";
    window.setTimeout(check, POLL_MS);
  }

  function check() {
    // a request caught by the old server while it stops must not hang the page: 3 s at most
    var abort = window.AbortController ? new AbortController() : null;
    if (abort) { window.setTimeout(function () { abort.abort(); }, 3000); }
    fetch(url, { cache: "no-store", signal: abort ? abort.signal : undefined }).then(function (reply) {
      return reply.json().then(function (body) {
        var up = body && body.status && body.status !== "starting";
        if (up && (sawDown || Date.now() - started > NEVER_DOWN_MS)) {
          window.location.href = "/";
          return;
        }
        if (!up) { waiting(); return; }
        window.setTimeout(check, POLL_MS);
      });
    }).catch(waiting);
  }
  window.setTimeout(check, POLL_MS);
})();
