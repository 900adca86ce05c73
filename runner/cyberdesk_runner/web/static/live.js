// Live updates without a reload: every few seconds, ask for this page's <main> again (X-Live: 1 makes the server
// send only that part) and swap in the parts that changed, each top-level element on its own: a big table that
// did not change is left alone, so the browser neither re-parses nor re-lays it out. The scroll position stays;
// nothing is fetched while the tab is hidden.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!main) return;
  var every = Number(main.getAttribute("data-refresh")) || 2000;
  var last = null;

  function show(text) {
    document.body.setAttribute("data-live", text);
    if (state) state.textContent = text === "ok" ? "live" : text;
  }

  function swap(html) {
    var fresh = document.createElement("template");
    fresh.innerHTML = html;
    var now = fresh.content.children;
    var shown = main.children;
    if (now.length !== shown.length) {
      main.replaceChildren(fresh.content);
      return;
    }
    // Walk backwards: replacing an element does not move the ones before it.
    for (var i = now.length - 1; i >= 0; i--) {
      if (!shown[i].isEqualNode(now[i])) shown[i].replaceWith(now[i]);
    }
  }

  function tick() {
    if (document.hidden) return setTimeout(tick, every);
    fetch(window.location.href, { headers: { "X-Live": "1" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        if (html !== last) swap(html);
        last = html;
        show("ok");
      })
      .catch(function () { show("offline"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
