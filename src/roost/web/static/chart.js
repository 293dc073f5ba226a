/* A small SVG line chart, written for Roost (no library): one line per series of
 * (time in ms, count) points, a time axis and a count axis, an optional dashed target line
 * and vertical markers (a race's lead changes). No inline styles: colours come from classes
 * in roost.css, so the page's Content-Security-Policy holds.
 *
 *   var chart = RoostChart.create(element, { target: 1000000 });
 *   chart.setSeries("42", "@alice", [[t0, 3], [t1, 5]]);
 *   chart.addPoint("42", Date.now(), 6);
 *   chart.addMarker(Date.now(), "@alice took the lead");
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 640, HEIGHT = 260;
  var PAD = { left: 64, right: 16, top: 16, bottom: 28 };

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, cls) {
    var node = el("text", { x: x, y: y, "class": cls || "chart-label" }, parent);
    node.textContent = content;
    return node;
  }

  function formatCount(n) { return Math.round(n).toLocaleString("en"); }

  function formatTime(ms, span) {
    var d = new Date(ms);
    var hm = String(d.getUTCHours()).padStart(2, "0") + ":" +
             String(d.getUTCMinutes()).padStart(2, "0");
    if (span <= 36 * 3600 * 1000) return hm;
    return d.getUTCDate() + "/" + (d.getUTCMonth() + 1) + " " + hm;
  }

  function create(container, options) {
    options = options || {};
    var series = [];        // {id, label, points: [[ms, count]], index}
    var markers = [];       // {at, label}
    var target = options.target || null;
    var svg = el("svg", { viewBox: "0 0 " + WIDTH + " " + HEIGHT, "class": "chart-svg",
                          role: "presentation", focusable: "false" });
    container.appendChild(svg);
    var legend = document.createElement("ul");
    legend.className = "chart-legend";
    container.appendChild(legend);

    function find(id) {
      for (var i = 0; i < series.length; i++) if (series[i].id === id) return series[i];
      return null;
    }

    function render() {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      var all = [];
      series.forEach(function (s) { all = all.concat(s.points); });
      markers.forEach(function (m) { all.push([m.at, null]); });
      if (!all.length) { text(svg, WIDTH / 2, HEIGHT / 2, "No data yet", "chart-label middle"); return; }
      var t0 = Infinity, t1 = -Infinity, top = 1, low = Infinity;
      all.forEach(function (p) {
        t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]);
        if (p[1] !== null) { top = Math.max(top, p[1]); low = Math.min(low, p[1]); }
      });
      var showTarget = target && target <= Math.max(top * 2, 10);
      if (showTarget) top = Math.max(top, target);
      if (low === Infinity) low = 0;
      // Zoom on where the lines are (a race near its target is a close-up, not two flat lines
      // near the top): the range spans the data, and the target when it is in reach.
      var span = Math.max(top - low, 2);
      var bottom = Math.max(0, Math.floor(low - span * 0.1));
      top = Math.ceil(top + span * 0.1);
      if ((top - bottom) % 2) top += 1; // whole numbers on the half-way line
      if (t1 <= t0) t1 = t0 + 60000;
      var w = WIDTH - PAD.left - PAD.right, h = HEIGHT - PAD.top - PAD.bottom;
      function x(t) { return PAD.left + (t - t0) / (t1 - t0) * w; }
      function y(c) { return PAD.top + h - (c - bottom) / (top - bottom) * h; }

      // Axes: counts at the bottom, half-way and top; times at both ends.
      el("line", { x1: PAD.left, y1: PAD.top + h, x2: PAD.left + w, y2: PAD.top + h,
                   "class": "chart-axis" }, svg);
      [bottom, (bottom + top) / 2, top].forEach(function (c) {
        el("line", { x1: PAD.left, y1: y(c), x2: PAD.left + w, y2: y(c), "class": "chart-grid" }, svg);
        text(svg, PAD.left - 6, y(c) + 4, formatCount(c), "chart-label end");
      });
      text(svg, PAD.left, HEIGHT - 8, formatTime(t0, t1 - t0), "chart-label");
      text(svg, PAD.left + w, HEIGHT - 8, formatTime(t1, t1 - t0), "chart-label end");

      if (target) {
        if (showTarget) {
          el("line", { x1: PAD.left, y1: y(target), x2: PAD.left + w, y2: y(target),
                       "class": "chart-target", "data-target": target }, svg);
          text(svg, PAD.left + 4, y(target) - 4, "Target " + formatCount(target), "chart-label");
        } else {
          text(svg, PAD.left + w, PAD.top + 10, "Target " + formatCount(target) + " ↑",
               "chart-label end chart-target-note");
        }
      }
      markers.forEach(function (m) {
        var line = el("line", { x1: x(m.at), y1: PAD.top, x2: x(m.at), y2: PAD.top + h,
                                "class": "chart-marker" }, svg);
        el("title", {}, line).textContent = m.label;
      });
      series.forEach(function (s) {
        // A count holds until it changes: draw steps (across, then up or down).
        var points = [];
        s.points.forEach(function (p, i) {
          if (i > 0) points.push(x(p[0]).toFixed(1) + "," + y(s.points[i - 1][1]).toFixed(1));
          points.push(x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1));
        });
        var line = el("polyline", { points: points.join(" "), "data-series": s.id,
                                    "data-points": String(s.points.length),
                                    "class": "chart-line series-" + (s.index % 6) }, svg);
        el("title", {}, line).textContent = s.label;
      });
    }

    function renderLegend() {
      legend.textContent = "";
      series.forEach(function (s) {
        var item = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.className = "chart-swatch series-" + (s.index % 6);
        swatch.setAttribute("aria-hidden", "true");
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(" " + s.label));
        legend.appendChild(item);
      });
    }

    return {
      setSeries: function (id, label, points) {
        var s = find(id);
        if (!s) { s = { id: id, label: label, points: [], index: series.length }; series.push(s); }
        s.label = label;
        s.points = points.slice().sort(function (a, b) { return a[0] - b[0]; });
        renderLegend();
        render();
      },
      addPoint: function (id, at, count) {
        var s = find(id);
        if (!s) return;
        var last = s.points[s.points.length - 1];
        if (last && at < last[0]) at = last[0];
        s.points.push([at, count]);
        render();
      },
      addMarker: function (at, label) { markers.push({ at: at, label: label }); render(); },
      clearMarkers: function () { markers = []; render(); },
      render: render
    };
  }

  window.RoostChart = { create: create };
})();
