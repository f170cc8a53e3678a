"""The style sheet and the script every report page inlines (no file is fetched: the page works offline).

The script draws the figures stored in the page's JSON block with Plotly when they come near the viewport (a long
page opens at once). A browser keeps only a few WebGL contexts alive, so at most :data:`MAX_LIVE_SCENES` 3-D scenes
are drawn at a time; those scrolled far away are released and drawn again when they come back. Scenes of one
figure (prediction and ground truth side by side) share their camera: rotating one rotates the other.
"""
from __future__ import annotations

#: 3-D scenes drawn at once (browsers lose the oldest WebGL context past about 16)
MAX_LIVE_SCENES = 10

STYLE = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9dee4; --bad: #c62828; --good: #2e7d32; --accent: #1565c0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #f7f8fa; }
header { padding: 18px 28px 10px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 21px; }
header .subtitle { color: var(--muted); }
nav { margin-top: 8px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 10px 28px 40px; max-width: 1500px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 16px 0; padding: 14px 18px; }
section h2 { margin: 0 0 10px; font-size: 17px; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.card th { width: 220px; background: none; color: var(--muted); font-weight: 500; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
              word-break: break-all; }
.plot { width: 100%; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.gallery.wide { grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }
.tile { border: 1px solid var(--line); border-radius: 6px; overflow: hidden; background: #fff; }
.tile.wrong { border-color: var(--bad); box-shadow: 0 0 0 1px var(--bad) inset; }
.tile .caption { padding: 5px 9px; font-size: 13px; border-bottom: 1px solid var(--line); }
.tile.wrong .caption { background: #fdecea; }
.tile .caption b.bad { color: var(--bad); }
.tile .caption b.good { color: var(--good); }
.tile .view { height: 300px; }
.tile .view.placeholder::after { content: "3-D view: scroll here to draw"; display: block; padding: 130px 0;
                                 text-align: center; color: var(--muted); font-size: 12px; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 50%; margin-right: 4px;
            vertical-align: -1px; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var store = document.getElementById("pcpeft-figures");
  var figures = JSON.parse(store.textContent);
  var MAX_LIVE = %(max_live)d;
  // no "Share chart" button: it would upload the figure to plotly's cloud; this page sends nothing anywhere
  var config = {displaylogo: false, responsive: true, scrollZoom: true, showSendToCloud: false, plotlyServerURL: "",
                modeBarButtonsToRemove: ["resetCameraLastSave3d", "select2d", "lasso2d"]};
  var live = [];            // drawn 3-D views, oldest first
  var visible = new Set();  // 3-D views in or near the viewport

  function sceneCount(div) { return Number(div.getAttribute("data-scenes") || "1"); }
  function liveScenes() { return live.reduce(function (n, div) { return n + sceneCount(div); }, 0); }

  function linkCameras(div) {
    var scenes = Object.keys(div._fullLayout || {}).filter(function (k) { return /^scene\\d*$/.test(k); });
    if (scenes.length < 2) { return; }
    var busy = false;
    div.on("plotly_relayout", function (change) {
      if (busy) { return; }
      var source = scenes.find(function (s) { return change[s + ".camera"]; });
      if (!source) { return; }
      var update = {};
      scenes.forEach(function (s) { if (s !== source) { update[s + ".camera"] = change[source + ".camera"]; } });
      busy = true;
      Plotly.relayout(div, update).then(function () { busy = false; }, function () { busy = false; });
    });
  }

  function release(div) {
    // purge alone leaves the WebGL contexts to the garbage collector; the browser counts them until then
    var contexts = Array.prototype.map.call(div.querySelectorAll("canvas"), function (canvas) {
      return canvas.getContext("webgl2") || canvas.getContext("webgl");
    });
    Plotly.purge(div);
    contexts.forEach(function (gl) {
      var lose = gl && gl.getExtension("WEBGL_lose_context");
      if (lose) { lose.loseContext(); }
    });
    div.removeAttribute("data-state");
    div.classList.add("placeholder");
    live.splice(live.indexOf(div), 1);
  }

  function draw(div) {
    if (div.getAttribute("data-state")) { return; }
    var spec = figures[div.getAttribute("data-figure")];
    var threeD = div.classList.contains("three-d");
    if (threeD) {
      while (live.length && liveScenes() + sceneCount(div) > MAX_LIVE) {
        var old = live.find(function (d) { return !visible.has(d); });
        if (!old) { break; }
        release(old);
      }
      live.push(div);
    }
    div.setAttribute("data-state", "drawing");
    div.classList.remove("placeholder");
    Plotly.newPlot(div, spec.data, spec.layout, config).then(function () {
      div.setAttribute("data-state", "drawn");
      linkCameras(div);
    });
  }

  var views = Array.prototype.slice.call(document.querySelectorAll(".plot[data-figure]"));
  var observer = ("IntersectionObserver" in window) ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) { visible.add(entry.target); draw(entry.target); }
      else { visible.delete(entry.target); }
    });
  }, {rootMargin: "300px 0px"}) : null;
  views.forEach(function (div) { if (observer) { observer.observe(div); } else { draw(div); } });
})();
"""


def page_script(max_live: int = MAX_LIVE_SCENES) -> str:
    """The page's script with its limit of live 3-D scenes."""
    return SCRIPT % {"max_live": max_live}


__all__ = ["MAX_LIVE_SCENES", "STYLE", "page_script"]
