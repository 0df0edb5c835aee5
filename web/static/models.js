// Models page: upload with a progress bar (XHR), and test a model on an image.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function show(el, text) { el.textContent = text; el.classList.toggle("hidden", !text); }

  function errorOf(xhr) {
    try { return JSON.parse(xhr.responseText).error || xhr.statusText; } catch (e) { return "HTTP " + xhr.status; }
  }

  function post(url, file, onProgress, onDone) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (onProgress) {
      xhr.upload.addEventListener("progress", function (e) { if (e.lengthComputable) { onProgress(e.loaded / e.total); } });
    }
    xhr.addEventListener("load", function () { onDone(xhr); });
    xhr.addEventListener("error", function () { onDone(xhr); });
    xhr.send(file);
  }

  var upload = document.getElementById("upload-form");
  if (upload) {
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = document.getElementById("upload-file").files[0];
      var bar = document.getElementById("upload-progress");
      var status = document.getElementById("upload-status");
      var error = document.getElementById("upload-error");
      show(error, "");
      if (!file) { show(error, "Choose a model file first."); return; }
      var params = new URLSearchParams();
      params.set("filename", file.name);
      ["name", "task", "labels", "layout", "color", "resize", "mean", "std", "score", "decoder", "description"].forEach(function (key) {
        var field = upload.elements[key];
        if (field && field.value !== "") { params.set(key, field.value); }
      });
      bar.classList.remove("hidden");
      bar.value = 0;
      status.textContent = "Uploading " + file.name + "…";
      post("/models/upload?" + params.toString(), file, function (share) {
        bar.value = Math.round(share * 100);
        if (share >= 1) { status.textContent = "Uploaded; checking that the model loads and runs…"; }
      }, function (xhr) {
        bar.classList.add("hidden");
        if (xhr.status === 201) {
          var added = JSON.parse(xhr.responseText);
          status.textContent = "Added " + added.ref + ". Reloading the list…";
          window.setTimeout(function () { window.location.reload(); }, 1200);
        } else {
          status.textContent = "";
          show(error, xhr.status ? "Not added: " + errorOf(xhr) : "Upload failed: the appliance did not answer.");
        }
      });
    });
  }

  var test = document.getElementById("test-form");
  if (test) {
    test.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = document.getElementById("test-image").files[0];
      var status = document.getElementById("test-status");
      var error = document.getElementById("test-error");
      show(error, "");
      if (!file) { show(error, "Choose an image first."); return; }
      var model = document.getElementById("test-model").value;
      status.textContent = "Running " + model + "…";
      post("/models/test?model=" + encodeURIComponent(model), file, null, function (xhr) {
        status.textContent = "";
        if (xhr.status !== 200) { show(error, "Test failed: " + errorOf(xhr)); return; }
        var answer = JSON.parse(xhr.responseText);
        var r = answer.result;
        document.getElementById("test-output").src = answer.image;
        document.getElementById("test-summary").textContent = (r.label === null ? "no label" : r.label + " " + r.score.toFixed(3)) +
          " · " + r.count + " object(s) · " + r.latency_ms.total.toFixed(1) + " ms on " + r.backend;
        document.getElementById("test-result").classList.remove("hidden");
      });
    });
  }
})();
