// The review console's only script: live header and queue, and keyboard shortcuts.
// Rows arrive as server-rendered (escaped) HTML; no user text is ever built into markup here.
"use strict";

(function () {
  const page = document.body.dataset.page;

  function setText(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  }

  function formatScore(value) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(3);
  }

  let selected = 0;
  function rows() {
    return Array.from(document.querySelectorAll("#rows tr.case"));
  }
  function select(index) {
    const all = rows();
    all.forEach((row) => row.classList.remove("selected"));
    if (all.length === 0) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    all[selected].classList.add("selected");
  }

  async function refreshRows() {
    const body = document.getElementById("rows");
    if (!body) return;
    const qs = body.dataset.qs;
    const response = await fetch("/queue/rows" + (qs ? "?" + qs : ""), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.status === 401) {
      window.location.assign("/login");
      return;
    }
    if (!response.ok) return;
    const keep = rows()[selected];
    const keepId = keep ? keep.dataset.txId : null;
    body.innerHTML = await response.text();
    const again = rows().findIndex((row) => row.dataset.txId === keepId);
    select(again >= 0 ? again : selected);
  }

  function live() {
    if (!document.getElementById("summary") || !window.EventSource) return;
    // The version the page was rendered at: a change before the stream opens still counts.
    const rendered = document.getElementById("summary").dataset.version;
    let version = rendered ? Number(rendered) : null;
    const source = new EventSource("/events");
    source.addEventListener("summary", (event) => {
      const summary = JSON.parse(event.data);
      const dot = document.getElementById("live");
      if (summary.error) {
        if (dot) dot.classList.add("down");
        return;
      }
      if (dot) dot.classList.remove("down");
      setText("queue-size", summary.queue_size);
      setText("labels-today", summary.labels_today);
      setText("online-precision", formatScore(summary.online_precision));
      if (page === "queue" && version !== null && summary.version !== version) refreshRows();
      version = summary.version;
    });
    source.onerror = () => {
      const dot = document.getElementById("live");
      if (dot) dot.classList.add("down");
    };
  }

  function typing(event) {
    const tag = event.target && event.target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.ctrlKey || event.metaKey || event.altKey;
  }

  function click(id) {
    const node = document.getElementById(id);
    if (node) node.click();
  }

  document.addEventListener("keydown", (event) => {
    if (typing(event)) {
      if (event.key === "Escape" && event.target.blur) event.target.blur();
      return;
    }
    if (page === "queue") {
      const all = rows();
      if (event.key === "j") select(selected + 1);
      else if (event.key === "k") select(selected - 1);
      else if ((event.key === "Enter" || event.key === "o") && all[selected]) window.location.assign(all[selected].dataset.href);
      else if (event.key === "n" && all[0]) window.location.assign(all[0].dataset.href);
      else return;
      event.preventDefault();
    } else if (page === "case") {
      if (event.key === "f") click("fraud");
      else if (event.key === "l") click("legit");
      else if (event.key === "n") click("next");
      else if (event.key === "Escape") click("back");
      else return;
      event.preventDefault();
    }
  });

  document.addEventListener("click", (event) => {
    const row = event.target.closest && event.target.closest("#rows tr.case");
    if (row && event.target.tagName !== "A") window.location.assign(row.dataset.href);
  });

  select(0);
  live();
})();
