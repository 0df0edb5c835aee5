// Live view: shows the frame rate and viewers, and explains when the stream cannot be shown.
(function () {
  "use strict";
  var image = document.getElementById("live-image");
  if (!image) { return; }
  var fps = document.getElementById("live-fps");
  var viewers = document.getElementById("live-viewers");
  var failed = document.getElementById("live-error");
  image.addEventListener("error", function () {
    failed.classList.remove("hidden");
    image.classList.add("hidden");
  });
  function refresh() {
    if (document.hidden) { return; }
    fetch("/live/status", { credentials: "same-origin", cache: "no-store" }).then(function (reply) {
      return reply.ok ? reply.json() : null;
    }).then(function (info) {
      if (!info) { return; }
      fps.textContent = info.fps.toFixed(1);
      viewers.textContent = String(info.viewers);
    }).catch(function () { fps.textContent = "—"; });
  }
  refresh();
  window.setInterval(refresh, 1000);
  // Leaving the page closes the stream at once, freeing the viewer slot.
  window.addEventListener("pagehide", function () { image.src = ""; });
})();
