// dspex dashboard: live updates of the page's #live part by server-sent
// events. The server renders (and escapes) every update; this script only
// swaps it in. No inline script anywhere: the Content-Security-Policy
// allows this file alone.
"use strict";
(function () {
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  function mark(state, title) {
    if (!conn) return;
    conn.className = "conn " + state;
    conn.title = title;
    document.body.setAttribute("data-conn", state);
  }
  if (!live || !live.getAttribute("data-live") || !window.EventSource) {
    mark("off", "no live updates on this page");
    return;
  }
  var updates = 0;
  var es = new EventSource(live.getAttribute("data-live"));
  es.onopen = function () { mark("on", "live"); };
  es.addEventListener("update", function (e) {
    // Keep open <details> open across updates.
    var open = {};
    live.querySelectorAll("details[open] > summary").forEach(function (s) { open[s.textContent] = true; });
    live.innerHTML = e.data;
    live.querySelectorAll("details > summary").forEach(function (s) {
      if (open[s.textContent]) s.parentElement.open = true;
    });
    updates++;
    document.body.setAttribute("data-updates", String(updates));
  });
  es.addEventListener("end", function (e) {
    es.close();
    mark("ended", e.data);
    document.body.setAttribute("data-ended", "1");
  });
  es.onerror = function () { mark("err", "disconnected; retrying"); };
})();
