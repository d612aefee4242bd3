// evoforge's pages: fitness curves with uPlot (live or from embedded data), live tables, and a person's actions.
// Every value from the database is put into the page as text (textContent), never as HTML.
"use strict";
(function () {
  const ISLAND_COLOURS = ["#8ab", "#b8a", "#ab8", "#a8b", "#ba8", "#8ba", "#999", "#c96", "#69c", "#9c6"];

  function better(a, b, maximize) { return b === null || (maximize ? a > b : a < b); }

  // The chart's columns, grown in place as new points arrive.
  function emptyColumns(n) {
    return { x: [], score: [], best: [], held: [], islands: Array.from({ length: n }, () => []), islandBest: Array(n).fill(null) };
  }

  function append(cols, d) {
    for (let i = 0; i < d.evaluated.length; i++) {
      cols.x.push(d.evaluated[i]);
      const ok = d.valid[i] && !d.rejected[i] && d.score[i] !== null;
      cols.score.push(d.score[i]);
      cols.best.push(d.best[i]);
      cols.held.push(d.best_held_out[i]);
      for (let k = 0; k < cols.islands.length; k++) {
        if (ok && (d.island[i] === k || d.seed[i]) && better(d.score[i], cols.islandBest[k], d.maximize)) {
          cols.islandBest[k] = d.score[i];
        }
        cols.islands[k].push(cols.islandBest[k]);
      }
    }
  }

  function curveChart(el, first) {
    const cols = emptyColumns(first.num_islands);
    append(cols, first);
    const series = [{ label: "evaluated" },
      { label: "score", stroke: "#bbb", paths: () => null, points: { show: true, size: 3, fill: "#bbb" } },
      { label: "best", stroke: "#c22", width: 2 },
      { label: "held-out of best", stroke: "#26c", width: 2, dash: [6, 4] }];
    cols.islands.forEach((_, k) => series.push({ label: "island " + k, stroke: ISLAND_COLOURS[k % 10], width: 1 }));
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
    const plot = new uPlot({ width: width, height: 360, series: series,
      scales: { x: { time: false }, y: { range: yRange } },
      axes: [{ label: "candidates evaluated" }, { label: "score (" + (first.maximize ? "higher" : "lower") + " is better)", size: 70 }] },
      [cols.x, cols.score, cols.best, cols.held, ...cols.islands], el);
    return {
      total: () => cols.x.length,
      add: (d) => { append(cols, d); plot.setData([cols.x, cols.score, cols.best, cols.held, ...cols.islands]); },
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
        const d = await getJSON(base + "?since=" + chart.total());
        if (d.evaluated.length) chart.add(d);
        setText("curve-count", chart.total() + " candidates evaluated");
        setText("run-status", d.status);
      } catch (e) { setText("curve-count", "lost contact with the server: " + e.message); }
    }, 2000);
  }

  async function compareChart(el) {
    const [a, b] = await Promise.all([el.dataset.a, el.dataset.b].map(
      (n) => getJSON("/api/runs/" + encodeURIComponent(n) + "/curve?since=0")));
    const n = Math.max(a.evaluated.length, b.evaluated.length);
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const pad = (d) => xs.map((_, i) => (i < d.best.length ? d.best[i] : null));
    new uPlot({ width: Math.min(el.clientWidth || 1000, 1100), height: 360, scales: { x: { time: false } },
      series: [{ label: "evaluated" }, { label: el.dataset.a, stroke: "#c22", width: 2 }, { label: el.dataset.b, stroke: "#26c", width: 2 }],
      axes: [{ label: "candidates evaluated" }, { label: "running best", size: 70 }] }, [xs, pad(a), pad(b)], el);
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
