// System page: upload a signed system bundle with a progress bar (XHR), then offer the reboot.
(function () {
  "use strict";
  var form = document.getElementById("update-form");
  if (!form) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var bar = document.getElementById("update-progress");
  var status = document.getElementById("update-status");
  var error = document.getElementById("update-error");

  function show(el, text) { el.textContent = text; el.classList.toggle("hidden", !text); }

  function errorOf(xhr) {
    try { return JSON.parse(xhr.responseText).error || xhr.statusText; } catch (e) { return "HTTP " + xhr.status; }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("update-file").files[0];
    show(error, "");
    if (!file) { show(error, "Choose a .raucb bundle first."); return; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/system/update");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      bar.value = Math.round(100 * e.loaded / e.total);
      if (e.loaded >= e.total) { status.textContent = "Uploaded; checking the signature and writing the other slot (minutes)…"; }
    });
    xhr.addEventListener("load", function () {
      bar.classList.add("hidden");
      if (xhr.status === 200) {
        var done = JSON.parse(xhr.responseText);
        status.textContent = "Installed " + (done.version || "the bundle") + " into slot " + done.slot +
          ". Reboot to start it (the button below); it falls back by itself if it is not healthy.";
      } else {
        status.textContent = "";
        show(error, "Not installed: " + errorOf(xhr));
      }
    });
    xhr.addEventListener("error", function () {
      bar.classList.add("hidden");
      status.textContent = "";
      show(error, "Upload failed: the appliance did not answer.");
    });
    bar.classList.remove("hidden");
    bar.value = 0;
    status.textContent = "Uploading " + file.name + "…";
    xhr.send(file);
  });
})();
