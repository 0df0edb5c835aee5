// Inspection screen: refresh the last verdict and counters; draw region rectangles on a captured frame.
(function () {
  "use strict";

  function refresh() {
    fetch("/inspection/status", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var el = document.getElementById("verdict");
        var v = data.verdict;
        if (v) {
          el.textContent = v.ok ? "OK" : "NG";
          el.className = "verdict " + (v.ok ? "ok" : "ng");
          var list = document.getElementById("verdict-reasons");
          list.textContent = "";
          v.reasons.forEach(function (text) { var li = document.createElement("li"); li.textContent = text; list.appendChild(li); });
        }
        var total = document.getElementById("counters-0");
        if (total) {
          var t = data.counters.total, cells = total.querySelectorAll("td");
          [t.triggers, t.ok, t.ng, t.errors, t.missed].forEach(function (n, i) { cells[i].textContent = String(n); });
          cells[5].textContent = t.yield_pct === null ? "—" : t.yield_pct.toFixed(1) + " %";
        }
        var frame = document.getElementById("inspection-frame");
        if (frame) { frame.src = "/inspection/frame.jpg?regions=1&t=" + Date.now(); }
      }).catch(function () { /* the next refresh tries again */ });
  }
  setInterval(refresh, 2000);

  var canvas = document.getElementById("editor-canvas");
  var text = document.getElementById("job-text");
  if (!canvas || !text) { return; }
  var ctx = canvas.getContext("2d");
  var image = new Image();
  var start = null;

  function job() { try { return JSON.parse(text.value); } catch (e) { return null; } }

  function toSource(event) {
    var box = canvas.getBoundingClientRect();
    var sx = image.naturalWidth / box.width, sy = image.naturalHeight / box.height;
    return [Math.round((event.clientX - box.left) * sx), Math.round((event.clientY - box.top) * sy)];
  }

  function draw(extra) {
    ctx.drawImage(image, 0, 0);
    ctx.lineWidth = 3;
    var j = job();
    ((j && j.regions) || []).forEach(function (r) {
      if (!r.points || r.points.length < 2) { return; }
      ctx.strokeStyle = "#00c8ff";
      ctx.beginPath();
      if (r.shape === "rect") {
        ctx.rect(r.points[0][0], r.points[0][1], r.points[1][0] - r.points[0][0], r.points[1][1] - r.points[0][1]);
      } else {
        ctx.moveTo(r.points[0][0], r.points[0][1]);
        r.points.slice(1).forEach(function (p) { ctx.lineTo(p[0], p[1]); });
        ctx.closePath();
      }
      ctx.stroke();
      ctx.fillStyle = "#00c8ff";
      ctx.fillText(String(r.id), r.points[0][0] + 4, r.points[0][1] + 14);
    });
    if (extra) { ctx.strokeStyle = "#ffc800"; ctx.strokeRect(extra[0], extra[1], extra[2], extra[3]); }
  }

  image.addEventListener("load", function () {
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    canvas.dataset.ready = "1";
    draw();
  });
  image.src = canvas.getAttribute("data-src") + "?t=" + Date.now();

  canvas.addEventListener("mousedown", function (event) { start = toSource(event); });
  canvas.addEventListener("mousemove", function (event) {
    if (!start) { return; }
    var p = toSource(event);
    draw([start[0], start[1], p[0] - start[0], p[1] - start[1]]);
  });
  canvas.addEventListener("mouseup", function (event) {
    if (!start) { return; }
    var end = toSource(event), j = job();
    var a = start;
    start = null;
    if (!j) { draw(); return; }
    var id = parseInt(document.getElementById("editor-region").value, 10) || 1;
    var points = [[Math.min(a[0], end[0]), Math.min(a[1], end[1])], [Math.max(a[0], end[0]), Math.max(a[1], end[1])]];
    j.regions = j.regions || [];
    var region = j.regions.filter(function (r) { return r.id === id; })[0];
    if (!region) { region = { id: id, name: "region " + id }; j.regions.push(region); }
    region.shape = "rect";
    region.points = points;
    text.value = JSON.stringify(j, null, 2);
    draw();
  });
  text.addEventListener("input", function () { draw(); });
}());
