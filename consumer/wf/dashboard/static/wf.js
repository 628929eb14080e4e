// wf dashboard: draws the step graph (layout by dagre) and the stage charts (uPlot), asks for confirmation
// where a form says so, and keeps the page live: the server's events (/live) say when something changed and
// the page fetches its live part again (?fragment=1), without reloading the whole page.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 168, NODE_H = 44;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function clip(text, max) { return text.length > max ? text.slice(0, max - 1) + "…" : text; }

  function drawGraph() {
    const data = document.getElementById("graph-data");
    const svg = document.getElementById("graph");
    if (!data || !svg || typeof dagre === "undefined") return;
    const model = JSON.parse(data.textContent);
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 46, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of model.nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
    for (const e of model.edges) g.setEdge(e.from, e.to, { kind: e.kind });
    dagre.layout(g);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const size = g.graph();
    svg.setAttribute("width", Math.max(size.width || 0, 100));
    svg.setAttribute("height", Math.max(size.height || 0, 40));
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#64748b" }, marker);
    for (const e of g.edges()) {
      const edge = g.edge(e);
      const d = edge.points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
      el("path", { d: d, class: "edge " + (edge.kind || ""), "marker-end": "url(#arrow)", "data-from": e.v, "data-to": e.w }, svg);
    }
    for (const n of model.nodes) {
      const box = g.node(n.id);
      const link = el("a", { href: n.link }, svg);
      const group = el("g", { class: "node st-" + n.status, "data-step": n.id, "data-status": n.status,
                               transform: "translate(" + (box.x - NODE_W / 2) + "," + (box.y - NODE_H / 2) + ")" }, link);
      el("title", {}, group).textContent = n.id + ": " + n.status + (n.attempt ? " (attempt " + n.attempt + ")" : "");
      el("rect", { width: NODE_W, height: NODE_H, rx: 6 }, group);
      el("text", { x: 8, y: 18 }, group).textContent = clip(n.label, 24);
      el("text", { x: 8, y: 34, class: "detail" }, group).textContent = clip(n.detail + " · " + n.status, 30);
    }
  }

  const charts = [];
  function drawCharts() {
    const data = document.getElementById("series-data");
    if (!data || typeof uPlot === "undefined") return;
    const series = JSON.parse(data.textContent);
    while (charts.length) charts.pop().destroy();
    const palette = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
    for (const box of document.querySelectorAll(".chart[data-metric]")) {
      box.textContent = "";
      const metric = box.dataset.metric;
      // a stage with nothing but zeros or gaps in this metric is left out of its chart
      const stages = Object.keys(series.stages).filter((s) => series.stages[s][metric].some((v) => v));
      if (!stages.length) {
        const empty = document.createElement("p");
        empty.className = "muted chart-empty";
        empty.textContent = "Nothing in the last hour.";
        box.appendChild(empty);
        continue;
      }
      const opts = {
        width: Math.max(box.clientWidth, 300), height: 200,
        series: [{}].concat(stages.map((s, i) => ({ label: s, stroke: palette[i % palette.length], width: 1.5, spanGaps: true,
                                                    points: { size: 4 } }))),
        axes: [{}, { size: 50 }],
        legend: { live: false },
      };
      // the x axis spans the whole hour: empty points at its two ends
      const rows = [[series.now - 3600].concat(series.minutes, [series.now])]
        .concat(stages.map((s) => [null].concat(series.stages[s][metric], [null])));
      charts.push(new uPlot(opts, rows, box));
    }
  }

  function confirmForms(root) {
    for (const form of root.querySelectorAll("form[data-confirm]")) {
      form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
    }
  }

  function draw(root) { drawGraph(); drawCharts(); confirmForms(root); }

  // ---- live ----
  const banner = document.getElementById("db-banner");
  let pending = null, busy = false;
  function typing() {
    const active = document.activeElement;
    const live = document.getElementById("live");
    return active && live && live.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }
  async function refresh() {
    pending = null;
    if (busy || typing()) { pending = setTimeout(refresh, 500); return; }
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.status === 503) { banner.hidden = false; return; }
      if (!response.ok) return;
      const html = await response.text();
      const live = document.getElementById("live");
      live.innerHTML = html;  // the server escaped every value in it
      banner.hidden = true;
      document.body.dataset.refreshed = String(Date.now());
      draw(live);
    } catch (err) {
      banner.hidden = false;
    } finally {
      busy = false;
    }
  }
  // an error page (the database was down) comes back whole, not in part
  const again = document.body.dataset.reload ? () => window.location.reload() : refresh;
  function soon(ms) { if (!pending) pending = setTimeout(again, ms); }

  function listen() {
    if (!window.EventSource) return;
    const run = document.body.dataset.live;
    const args = new URLSearchParams({ since: document.body.dataset.rendered || "0" });
    if (run && run !== "*") args.set("run", run);
    const source = new EventSource("/live?" + args.toString());
    source.addEventListener("change", () => soon(100));
    source.addEventListener("status", (event) => {
      const down = event.data === "down";
      const was = !banner.hidden;
      banner.hidden = !down;
      if (was && !down) soon(50);
    });
    source.onerror = () => { banner.hidden = false; };
    source.onopen = () => { if (!banner.hidden) soon(50); };
  }

  draw(document);
  listen();
})();
