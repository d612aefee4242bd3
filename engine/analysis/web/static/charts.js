// evoforge's pages: fitness curves with uPlot (live or from embedded data), live tables, and a person's actions.
// Every value from the database is put into the page as text (textContent), never as HTML.
"use strict";
(function () {
  const ISLAND_COLOURS = ["#8ab", "#b8a", "#ab8", "#a8b", "#ba8", "#8ba", "#999", "#c96", "#69c", "#9c6"];

  // The server sends a sample of the candidates and every point where a best changes, each with the running
  // bests at that moment (engine/analysis/web/curves.py); the lines step from point to point.
  const STEP = () => uPlot.paths.stepped({ align: 1 });

  function fromPayload(d) {
    return { x: d.evaluated.slice(), score: d.score.slice(), best: d.best.slice(), held: d.best_held_out.slice(),
      islands: d.island_best.map((c) => c.slice()), total: d.total, version: d.version };
  }

  function append(cols, d) {
    cols.x.push(...d.evaluated); cols.score.push(...d.score); cols.best.push(...d.best);
    cols.held.push(...d.best_held_out);
    d.island_best.forEach((c, k) => cols.islands[k].push(...c));
    cols.total = d.total; cols.version = d.version;
  }

  function curveChart(el, first) {
    let cols = fromPayload(first);
    const series = [{ label: "evaluated" },
      { label: "score", stroke: "#bbb", paths: () => null, points: { show: true, size: 3, fill: "#bbb" } },
      { label: "best", stroke: "#c22", width: 2, paths: STEP() },
      { label: "held-out of best", stroke: "#26c", width: 2, dash: [6, 4], paths: STEP() }];
    cols.islands.forEach((_, k) => series.push({ label: "island " + k, stroke: ISLAND_COLOURS[k % 10], width: 1,
      paths: STEP() }));
    const width = Math.max(400, Math.min(el.clientWidth || 1000, 1100));
    // The y range follows the best curves and most candidates, so a few wild scores do not flatten the lines.
    const yRange = () => {
      const sure = [...cols.best, ...cols.held, ...cols.islands.flat()].filter((v) => v !== null);
      const scores = cols.score.filter((v) => v !== null).sort((a, b) => a - b);
      const q = (f) => scores[Math.min(scores.length - 1, Math.floor(f * scores.length))];
      const all = sure.concat(scores.length ? [q(0.1), q(0.9)] : []);
      if (!all.length) return [0, 1];
      let lo = Math.min(...all), hi = Math.max(...all);
      const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
      return [lo - pad, hi + pad];
    };
    const data = () => [cols.x, cols.score, cols.best, cols.held, ...cols.islands];
    const plot = new uPlot({ width: width, height: 360, series: series,
      scales: { x: { time: false }, y: { range: yRange } },
      axes: [{ label: "candidates evaluated" }, { label: "score (" + (first.maximize ? "higher" : "lower") + " is better)", size: 70 }] },
      data(), el);
    return {
      total: () => cols.total,
      since: () => (cols.x.length ? cols.x[cols.x.length - 1] : 0),
      version: () => cols.version,
      // New points are added; a curve of another version (a rejection changed the bests) replaces the old one.
      add: (d) => { if (d.reset) cols = fromPayload(d); else append(cols, d); plot.setData(data()); },
    };
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  function setText(id, text) { const el = document.getElementById(id); if (el) el.textContent = text; }

  async function liveCurve(el) {
    const base = "/api/runs/" + encodeURIComponent(el.dataset.run) + "/curve";
    const chart = curveChart(el, await getJSON(base + "?since=0"));
    setText("curve-count", chart.total() + " candidates evaluated");
    setInterval(async () => {
      try {
        const d = await getJSON(base + "?since=" + chart.since() + "&version=" + encodeURIComponent(chart.version()));
        if (d.reset || d.evaluated.length) chart.add(d);
        setText("curve-count", chart.total() + " candidates evaluated");
        setText("run-status", d.status);
      } catch (e) { setText("curve-count", "lost contact with the server: " + e.message); }
    }, 2000);
  }

  // Each run's running best at every candidate count either run has a point for (held until its next point).
  function stepsOn(xs, d) {
    const out = [];
    let j = 0, v = null;
    for (const x of xs) {
      while (j < d.evaluated.length && d.evaluated[j] <= x) { v = d.best[j]; j++; }
      out.push(x <= d.total ? v : null);
    }
    return out;
  }

  async function compareChart(el) {
    const [a, b] = await Promise.all([el.dataset.a, el.dataset.b].map(
      (n) => getJSON("/api/runs/" + encodeURIComponent(n) + "/curve?since=0")));
    const xs = [...new Set([...a.evaluated, ...b.evaluated])].sort((p, q) => p - q);
    new uPlot({ width: Math.min(el.clientWidth || 1000, 1100), height: 360, scales: { x: { time: false } },
      series: [{ label: "evaluated" }, { label: el.dataset.a, stroke: "#c22", width: 2, paths: STEP() },
        { label: el.dataset.b, stroke: "#26c", width: 2, paths: STEP() }],
      axes: [{ label: "candidates evaluated" }, { label: "running best", size: 70 }] }, [xs, stepsOn(xs, a), stepsOn(xs, b)], el);
  }

  function liveRuns(table) {
    setInterval(async () => {
      try {
        const runs = await getJSON("/api/runs");
        for (const r of runs) {
          const row = table.querySelector('tr[data-run="' + CSS.escape(r.name) + '"]');
          if (!row) { setText("action-status", "a new run started: reload the page to see it"); continue; }
          const cells = row.querySelectorAll("td");
          cells[2].textContent = r.status; cells[2].className = "l status-" + r.status;
          cells[3].textContent = r.candidates; cells[4].textContent = r.best_text;
          cells[5].textContent = Math.round(r.valid_rate * 100) + "%";
          cells[6].textContent = r.throughput ? r.throughput.toFixed(1) : "-";
          cells[7].textContent = r.cost_text; cells[9].textContent = r.took;
        }
      } catch (e) { /* the next poll tries again */ }
    }, 3000);
    const go = document.getElementById("compare-go");
    if (go) go.addEventListener("click", () => {
      const picked = [...document.querySelectorAll(".compare-pick:checked")].map((c) => c.value);
      if (picked.length !== 2) { setText("action-status", "tick exactly two runs to compare"); return; }
      location.href = "/compare?a=" + encodeURIComponent(picked[0]) + "&b=" + encodeURIComponent(picked[1]);
    });
  }

  // A person's action: POST the form as JSON. The token comes from the cookie set by /?token=..., or is asked for.
  function actionForms() {
    for (const form of document.querySelectorAll("form.action")) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const body = Object.fromEntries(new FormData(form).entries());
        const send = (token) => fetch(form.dataset.action, { method: "POST", credentials: "same-origin",
          headers: Object.assign({ "Content-Type": "application/json" }, token ? { "X-Evoforge-Token": token } : {}),
          body: JSON.stringify(body) });
        setText("action-status", "working...");
        let r = await send(sessionStorage.getItem("evoforge-token"));
        if (r.status === 403) {
          const token = window.prompt("This action needs the token `evoforge serve` printed when it started:");
          if (!token) { setText("action-status", "not done: no token"); return; }
          sessionStorage.setItem("evoforge-token", token);
          r = await send(token);
        }
        const answer = await r.json().catch(() => ({ error: "the server answered " + r.status }));
        setText("action-status", r.ok ? answer.message : "refused: " + answer.error);
        if (r.ok && form.dataset.reload === "yes") setTimeout(() => location.reload(), 600);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const curve = document.getElementById("curve");
    if (curve && curve.dataset.live === "yes") liveCurve(curve);
    else if (curve) curveChart(curve, JSON.parse(document.getElementById("curve-data").textContent));
    const cmp = document.getElementById("compare");
    if (cmp) compareChart(cmp);
    const runs = document.getElementById("runs");
    if (runs) liveRuns(runs);
    actionForms();
  });
})();
