// clinforge review: autosave, keyboard shortcuts, confirmations and live progress (no inline script: the CSP
// allows scripts from this server only).
(function () {
  "use strict";

  // Forms that ask before doing something final (closing a study).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });

  // Admin study page: refresh the progress numbers every 10 seconds.
  var card = document.getElementById("progress-card");
  if (card) {
    setInterval(function () {
      fetch(card.dataset.progressUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) return;
          var bar = document.getElementById("study-progress");
          bar.value = p.submitted; bar.max = p.assigned || 1;
          document.getElementById("progress-text").textContent =
            p.submitted + " of " + p.assigned + " ratings submitted";
        })
        .catch(function () {});
    }, 10000);
  }

  var form = document.getElementById("rate-form");
  if (!form) return;
  var status = document.getElementById("save-status");
  var timer = null;
  var dirty = false;

  function payload() {
    var values = {};
    form.querySelectorAll("fieldset.axis").forEach(function (fs) {
      var checked = fs.querySelector("input[type=radio]:checked");
      values[fs.dataset.axis] = checked ? checked.value : null;
    });
    var body = {
      unsure: form.elements.unsure.checked,
      flagged: form.elements.flagged.checked,
      comment: form.elements.comment.value
    };
    if (form.dataset.kind === "pairwise") body.choice = values.choice; else body.values = values;
    return body;
  }

  function setStatus(text, bad) {
    status.textContent = text;
    status.classList.toggle("bad", !!bad);
  }

  function save() {
    timer = null;
    dirty = false;
    setStatus("Saving…");
    return fetch(form.dataset.autosave, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true, // the request finishes even when the tab closes
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify(payload())
    }).then(function (r) {
      if (r.ok) setStatus("Saved");
      else r.json().then(function (e) { setStatus("Not saved: " + (e.error || r.status), true); },
                         function () { setStatus("Not saved (" + r.status + ")", true); });
    }).catch(function () { dirty = true; setStatus("Not saved (offline?)", true); });
  }

  function schedule(delay) {
    dirty = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, delay);
  }

  form.addEventListener("change", function () { schedule(150); });
  form.addEventListener("input", function (ev) { if (ev.target.tagName === "TEXTAREA") schedule(800); });
  window.addEventListener("pagehide", function () { if (dirty) { if (timer) clearTimeout(timer); save(); } });
  form.addEventListener("submit", function () { if (timer) clearTimeout(timer); dirty = false; });

  // Keyboard: digits choose on the highlighted question, arrows move, u/f toggle, Enter next, p previous.
  var axes = Array.prototype.slice.call(form.querySelectorAll("fieldset.axis"));
  var current = 0;
  function highlight(i) {
    if (!axes.length) return;
    current = Math.max(0, Math.min(axes.length - 1, i));
    axes.forEach(function (a, j) { a.classList.toggle("current", j === current); });
  }
  var firstOpen = axes.findIndex(function (a) { return !a.querySelector("input:checked"); });
  highlight(firstOpen < 0 ? 0 : firstOpen);
  axes.forEach(function (a, j) { a.addEventListener("click", function () { highlight(j); }); });

  function toggle(name) {
    var box = form.elements[name];
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text")) return;
    if (/^[1-9]$/.test(ev.key) && axes.length) {
      var radios = axes[current].querySelectorAll("input[type=radio]");
      var pick = radios[Number(ev.key) - 1];
      if (pick && !pick.disabled) {
        pick.checked = true;
        pick.dispatchEvent(new Event("change", { bubbles: true }));
        if (current < axes.length - 1) highlight(current + 1);
        axes[current].scrollIntoView({ block: "nearest" });
      }
      ev.preventDefault();
    } else if (ev.key === "ArrowDown" || ev.key === "j") {
      highlight(current + 1); axes[current].scrollIntoView({ block: "nearest" }); ev.preventDefault();
    } else if (ev.key === "ArrowUp" || ev.key === "k") {
      highlight(current - 1); axes[current].scrollIntoView({ block: "nearest" }); ev.preventDefault();
    } else if (ev.key === "u") {
      toggle("unsure");
    } else if (ev.key === "f") {
      toggle("flagged");
    } else if (ev.key === "Enter" || ev.key === "n") {
      var next = document.getElementById("btn-next");
      if (next) { next.click(); ev.preventDefault(); }
    } else if (ev.key === "p") {
      var prev = document.getElementById("btn-prev");
      if (prev) prev.click();
    }
  });
})();
