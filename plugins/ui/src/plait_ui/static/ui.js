// plait-ui: live updates of a running run's page, and highlighting a node's edges.
// No framework, nothing fetched from elsewhere. The server renders every value escaped;
// this script only swaps in HTML the server rendered and never builds markup from data.
"use strict";

const DEFAULT_POLL_MS = 1000;

function lightWires(root, label, on) {
  for (const wire of root.querySelectorAll("path.wire")) {
    if (wire.dataset.up === label || wire.dataset.down === label) {
      wire.classList.toggle("lit", on);
    }
  }
}

function wireHighlights(root) {
  for (const svg of root.querySelectorAll("svg.dag")) {
    svg.addEventListener("mouseover", (event) => {
      const node = event.target.closest("a.node");
      if (node) lightWires(svg, node.dataset.label, true);
    });
    svg.addEventListener("mouseout", (event) => {
      const node = event.target.closest("a.node");
      if (node) lightWires(svg, node.dataset.label, false);
    });
  }
}

async function refresh(base) {
  const response = await fetch(base + "/body", { cache: "no-store" });
  if (!response.ok) return;
  const body = document.getElementById("run-body");
  body.innerHTML = await response.text();
  wireHighlights(body);
}

function followLive() {
  const base = document.body.dataset.live;
  if (!base) return;
  let signature = document.body.dataset.signature;
  const every = Number(document.body.dataset.pollMs) || DEFAULT_POLL_MS;
  async function poll() {
    let state;
    try {
      const response = await fetch(base + "/live", { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      state = await response.json();
    } catch (err) {
      setTimeout(poll, every * 3);
      return;
    }
    if (state.signature !== signature) {
      signature = state.signature;
      if (state.final) {
        window.location.reload();  // the header (status, error, actions) changes too
        return;
      }
      await refresh(base);
      const badge = document.querySelector("#run-status .badge");
      if (badge) {
        badge.textContent = state.status;
        badge.className = "badge st-" + state.status;
      }
    }
    if (!state.final) setTimeout(poll, every);
  }
  setTimeout(poll, every);
}

document.addEventListener("DOMContentLoaded", () => {
  wireHighlights(document);
  followLive();
});
