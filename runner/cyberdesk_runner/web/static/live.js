// Live updates without a reload: every few seconds, ask for this page's <main> again (X-Live: 1 makes the server
// send only that part) and swap it in. The scroll position stays; nothing is fetched while the tab is hidden.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!main) return;
  var every = Number(main.getAttribute("data-refresh")) || 2000;

  function show(text) {
    document.body.setAttribute("data-live", text);
    if (state) state.textContent = text === "ok" ? "live" : text;
  }

  function tick() {
    if (document.hidden) return setTimeout(tick, every);
    fetch(window.location.href, { headers: { "X-Live": "1" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        if (html !== main.innerHTML) main.innerHTML = html;
        show("ok");
      })
      .catch(function () { show("offline"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
