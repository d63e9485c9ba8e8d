// Power Snitch: the little the pages need beyond HTML. Everything works without it.
"use strict";
(function () {
  // The status page refreshes its live part every few seconds, without reloading.
  var live = document.getElementById("live");
  if (live && live.dataset.src && window.fetch) {
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(live.dataset.src, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (r.ok) return r.text(); throw new Error(r.status); })
        .then(function (html) { live.innerHTML = html; })
        .catch(function () {
          var u = document.getElementById("updated");
          if (u) u.textContent = "The agent does not answer; retrying.";
        })
        .finally(function () { busy = false; });
    }, 3000);
  }
  // Forms that change much ask first (the sync from NUT).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });
})();
