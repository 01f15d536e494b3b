/* The search's charts: the two 2-D views (one figure), the 3-D view (drawn only while shown) and the hypervolume per
   generation. WebGL traces (scattergl, scatter3d) fed typed arrays through Plotly.react, no DOM per point; hover
   cards come from the store. */
import { describe, gather, gatherPredicted, generationNumber, groups, nonDominated2d } from "./store.js";

/** ctx: {page, store, state: {job, compare}, candidateUrl, renderTable}. Returns {scheduleDraw, drawHypervolume}. */
export function createCharts(ctx) {
  const { page, store, state, candidateUrl } = ctx;
  // ---- charts ------------------------------------------------------------------------------------------------------

  const charts = page.needs_hardware ? {
    frontier: { node: document.getElementById("chart-frontier") },
    three: { node: document.getElementById("chart-3d"), title: "Proxy, latency and memory", compareKey: "all" },
  } : {};
  // The two 2-D views share one figure (one WebGL context: a second one cost ~250 ms in software WebGL) and their
  // proxy axis, so that zooming one zooms the other.
  const PANELS = [
    { y: "latency_s", scale: 1000, title: "Proxy vs latency", yTitle: "latency (ms, median)", compareKey: "latency",
      xaxis: "x", yaxis: "y" },
    { y: "memory_mb", scale: 1, title: "Proxy vs peak memory", yTitle: "peak memory (MB)", compareKey: "memory",
      xaxis: "x2", yaxis: "y2" },
  ];
  const hvNode = document.getElementById("chart-hv");
  const plotConfig = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function baseLayout(title) {
    const t = LTS.theme();
    return {
      title: { text: title, font: { size: 14 } }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: t.fg, family: "system-ui, sans-serif", size: 12 }, margin: { l: 64, r: 16, t: 40, b: 48 },
      showlegend: true, legend: { orientation: "h", x: 0, y: -0.2 }, hoverlabel: { align: "left" }, uirevision: "keep",
    };
  }

  function axis(title, extra = {}) {
    const t = LTS.theme();
    return { title: { text: title }, gridcolor: t.border, zerolinecolor: t.border, linecolor: t.border,
             color: t.muted, ...extra };
  }

  // Blue to teal to orange: every step stays visible on the light and the dark background (Viridis starts near black).
  const GENERATION_SCALE = [[0, "#2f6fdf"], [0.5, "#12a58a"], [1, "#f08c00"]];
  // The 3-D view draws at most this many non-frontier candidates (every k-th): scatter3d of 100,000 points takes
  // 1.4 s to build in software WebGL and shows a solid blob; the frontier is always drawn whole.
  const MAX_3D_POINTS = 20000;

  /** Candidates in one colour (a colour per point made a 100,000-point chart several times slower to build in
   *  software WebGL), the frontier coloured by the generation that found it. Hover labels come from the store (hoverinfo "none"): no per-point strings. */
  function traceSet(g, coords, { three = false } = {}) {
    const t = LTS.theme();
    const objectives = state.job.spec.objectives || [];
    // A 3-objective frontier member can sit above others in a 2-D view (it is better on the objective left out).
    const paretoName = objectives.length > 2 && !three ? `Pareto frontier (all ${objectives.length} objectives)`
      : "Pareto frontier";
    const type = three ? "scatter3d" : "scattergl";
    const stride = three ? Math.max(1, Math.ceil(g.feasible.length / MAX_3D_POINTS)) : 1;
    const feasible = stride > 1 ? g.feasible.filter((_, k) => k % stride === 0) : g.feasible;
    const generations = gather(g.pareto, store.cols.generation).map(generationNumber);  // the colour bar's 1 to N
    // N: the last generation that has candidates (a search that completes looking for a next one has none there).
    let last = (state.job.hypervolumes || []).length;
    for (const generation of store.cols.generation) last = Math.max(last, generationNumber(generation));
    // Smaller markers for denser clouds: less overdraw to read through, and in software WebGL (no GPU) the frame after
    // drawing 2 x 100,000 points took 1.7 s at size 5 and 1.0 s at size 3.
    const n = g.feasible.length + g.infeasible.length;
    const size = three ? (n > 20000 ? 2 : n > 2000 ? 3 : 4) : n > 20000 ? 3 : n > 2000 ? 4 : 6;
    const data = [
      { type, mode: "markers", name: stride > 1 ? `candidates (1 in ${stride})` : "candidates", hoverinfo: "none",
        ...coords(feasible), marker: { color: t.accent, size, opacity: three ? 0.35 : n > 20000 ? 0.4 : 0.55 } },
      { type, mode: "markers", name: "infeasible", hoverinfo: "none", ...coords(g.infeasible),
        marker: { color: t.muted, symbol: "x", size, opacity: 0.5 } },
      { type, mode: "markers", name: paretoName, hoverinfo: "none", ...coords(g.pareto),
        marker: { color: generations, colorscale: GENERATION_SCALE, cmin: 1, cmax: Math.max(2, last),
                  size: three ? 5 : 10, symbol: "diamond", line: { color: t.fg, width: 1 }, showscale: !three,
                  colorbar: { title: { text: "generation" }, thickness: 10, len: 0.8, outlinewidth: 0,
                              tickfont: { color: t.muted }, dtick: last <= 12 ? 1 : undefined } } },
      // Last of the set: the traces before it keep their indexes (a search that predicts nothing draws it empty).
      { type, mode: "markers", name: "predicted, not measured", hoverinfo: "none", ...coords(g.predicted, true),
        marker: { color: t.muted, symbol: "circle-open", size, opacity: 0.8 } },
    ];
    const targets = [{ slots: feasible }, { slots: g.infeasible }, { slots: g.pareto }, { slots: g.predicted }];
    return { data, targets };
  }

  function tracesFrontier(g) {
    const c = store.cols;
    const t = LTS.theme();
    const data = [];
    const targets = [];
    PANELS.forEach((panel, p) => {
      const set = traceSet(g, (slots, predicted = false) => ({
        x: gather(slots, c.proxy),
        y: predicted ? gatherPredicted(store, slots, panel.y, panel.scale) : gather(slots, c[panel.y], panel.scale) }));
      if ((state.job.spec.objectives || []).length > 2) {
        // This view's own 2-D frontier, over every measured feasible candidate: the line the eye expects.
        const own = nonDominated2d([...g.pareto, ...g.feasible], c.proxy, c[panel.y]);
        set.data.push({ type: "scattergl", mode: "lines", name: "non-dominated in this view (2 objectives)",
                        hoverinfo: "none", line: { shape: "hv", color: t.pareto, width: 1.5, dash: "dot" },
                        x: gather(own, c.proxy), y: gather(own, c[panel.y], panel.scale) });
        set.targets.push({ slots: Int32Array.from(own) });
      }
      const rows = state.compare && state.compare.frontiers[panel.compareKey];
      if (rows) {
        const sorted = [...rows].sort((a, b) => a.proxy - b.proxy);
        set.data.push({ type: "scattergl", mode: "lines+markers", name: `frontier of ${state.compare.label}`, hoverinfo: "none",
                        line: { shape: "hv", color: t.bad, width: 1.5 }, marker: { color: t.bad, size: 8, symbol: "square-open" },
                        x: sorted.map((r) => r.proxy), y: sorted.map((r) => r[panel.y] * panel.scale) });
        set.targets.push({ rows: sorted, job: state.compare.id });
      }
      for (const trace of set.data) {
        Object.assign(trace, { xaxis: panel.xaxis, yaxis: panel.yaxis, legendgroup: trace.name, showlegend: p === 0 });
        if (p > 0 && trace.marker) trace.marker.showscale = false;
      }
      data.push(...set.data);
      targets.push(...set.targets);
    });
    return { data, targets };
  }

  function layoutFrontier(node) {
    const stacked = node.clientWidth < 820;
    const [first, second] = stacked ? [[0.58, 1], [0, 0.42]] : [[0, 0.43], [0.54, 0.97]];
    const title = (text, x, y) => ({ text, x, y, xref: "paper", yref: "paper", xanchor: "center", yanchor: "bottom",
                                     showarrow: false, font: { size: 14 } });
    const proxy = "proxy: non-embedding parameters";
    return {
      ...baseLayout(""), margin: { l: 64, r: 16, t: 36, b: 48 },
      xaxis: axis(proxy, { domain: stacked ? [0, 0.92] : first, anchor: "y" }),
      yaxis: axis(PANELS[0].yTitle, { domain: stacked ? first : [0, 1], anchor: "x" }),
      xaxis2: axis(proxy, { domain: stacked ? [0, 0.92] : second, anchor: "y2", matches: "x" }),
      yaxis2: axis(PANELS[1].yTitle, { domain: stacked ? second : [0, 1], anchor: "x2" }),
      annotations: stacked
        ? [title(PANELS[0].title, 0.46, 1.0), title(PANELS[1].title, 0.46, 0.43)]
        : [title(PANELS[0].title, (first[0] + first[1]) / 2, 1.0), title(PANELS[1].title, (second[0] + second[1]) / 2, 1.0)],
    };
  }

  function traces3d(g) {
    const c = store.cols;
    const set = traceSet(g, (slots, predicted = false) => ({
      x: gather(slots, c.proxy),
      y: predicted ? gatherPredicted(store, slots, "latency_s", 1000) : gather(slots, c.latency_s, 1000),
      z: predicted ? gatherPredicted(store, slots, "memory_mb") : gather(slots, c.memory_mb) }), { three: true });
    const rows = state.compare && state.compare.frontiers.all;
    if (rows) {
      const t = LTS.theme();
      set.data.push({ type: "scatter3d", mode: "markers", name: `frontier of ${state.compare.label}`, hoverinfo: "none",
                      x: rows.map((r) => r.proxy), y: rows.map((r) => r.latency_s * 1000), z: rows.map((r) => r.memory_mb),
                      marker: { color: t.bad, size: 4, symbol: "square" } });
      set.targets.push({ rows, job: state.compare.id });
    }
    return set;
  }

  function describeCompared(r, jobId) {
    return [`${r.archid} (search #${jobId})`, `n_layer ${r.n_layer} · d_model ${r.d_model} · d_inner ${r.d_inner} · n_head ${r.n_head}`,
            `proxy ${LTS.params(r.proxy)} · ${LTS.ms(r.latency_s)} · ${LTS.mb(r.memory_mb)}`,
            `on its frontier (generation ${generationNumber(r.generation)})`];
  }

  function layout3d(title) {
    // The camera stands back (eye 1.9, not 1.6) and the scene keeps a margin: at 1.6 the latency and memory axis
    // titles were cut at the figure's edges.
    const scene = { xaxis: axis("proxy"), yaxis: axis("latency (ms)"), zaxis: axis("memory (MB)"),
                    bgcolor: "rgba(0,0,0,0)", camera: { eye: { x: 1.9, y: -1.9, z: 1.05 } },
                    domain: { x: [0.04, 0.96], y: [0.06, 1] } };
    return { ...baseLayout(title), scene, margin: { l: 24, r: 24, t: 40, b: 48 } };
  }

  function hvTraces() {
    const t = LTS.theme();
    const h = state.job.hypervolumes || [];
    return [{ type: "scatter", mode: "lines+markers", name: "hypervolume", x: h.map((e) => generationNumber(e.generation)),
              y: h.map((e) => e.hypervolume), text: h.map((e) => `frontier ${e.frontier_size} of ${e.candidates ?? "?"}`),
              hovertemplate: "after generation %{x}<br>hypervolume %{y:.4g}<br>%{text}<extra></extra>",
              line: { color: t.accent }, marker: { color: t.accent, size: 7 } }];
  }

  const tooltip = LTS.el("div", { class: "plot-tooltip", role: "tooltip", hidden: true });
  document.body.append(tooltip);

  /** Hover card and click-to-open for a chart; a target is {slots} (this search) or {rows, job} (a compared one). */
  function attachPointer(node) {
    let mouse = { clientX: 0, clientY: 0 };
    node.addEventListener("mousemove", (event) => { mouse = event; });
    const pointed = (event) => {
      const point = event.points && event.points[0];
      const target = point && node._ltsTargets && node._ltsTargets[point.curveNumber];
      if (!target) return null;
      return target.slots ? { job: state.job.id, slot: target.slots[point.pointNumber] }
        : { job: target.job, row: target.rows[point.pointNumber] };
    };
    node.on("plotly_hover", (event) => {
      const hit = pointed(event);
      if (!hit) return;
      const lines = hit.row ? describeCompared(hit.row, hit.job) : describe(store, hit.slot);
      tooltip.replaceChildren(LTS.el("strong", { class: "mono" }, lines[0]), ...lines.slice(1).map((l) => LTS.el("div", {}, l)));
      tooltip.hidden = false;
      const x = Math.min(mouse.clientX + 14, window.innerWidth - tooltip.offsetWidth - 8);
      const y = mouse.clientY + 14 + tooltip.offsetHeight > window.innerHeight ? mouse.clientY - tooltip.offsetHeight - 10 : mouse.clientY + 14;
      tooltip.style.left = `${Math.max(4, x)}px`;
      tooltip.style.top = `${Math.max(4, y)}px`;
    });
    node.on("plotly_unhover", () => { tooltip.hidden = true; });
    node.on("plotly_click", (event) => {
      const hit = pointed(event);
      if (!hit) return;
      const url = candidateUrl(hit.job, hit.row ? hit.row.archid : store.cols.archid[hit.slot]);
      if (event.event && (event.event.ctrlKey || event.event.metaKey)) window.open(url, "_blank");
      else window.location.assign(url);
    });
  }

  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const idle = () => new Promise((resolve) => (window.requestIdleCallback
    ? window.requestIdleCallback(() => resolve(), { timeout: 500 }) : setTimeout(resolve, 50)));
  let firstDrawn = false;

  /** What an empty chart says, by the search's state. */
  function emptyText() {
    const status = state.job.status;
    if (status === "queued" || status === "waiting-for-device") {
      return `No measurement yet: the search is ${status === "queued" ? "queued" : "waiting for its device"}; ` +
        "points appear here as candidates are measured.";
    }
    if (page.finished.includes(status)) return `This search ${status} before any candidate was measured.`;
    return "No measurement yet: points appear here as the first candidates are measured (a few seconds each).";
  }

  const shownCount = (g) => g.pareto.length + g.feasible.length + g.infeasible.length;  // measured ones

  async function draw(key, g) {
    const chart = charts[key];
    if (!chart) return;
    const { data, targets } = key === "three" ? traces3d(g) : tracesFrontier(g);
    const layout = key === "three" ? layout3d(chart.title) : layoutFrontier(chart.node);
    const empty = chart.node.closest(".chart").querySelector(".chart-empty");
    const nothing = shownCount(g) + g.predicted.length === 0;
    if (empty) {  // a sentence until the first point, not bare axes
      empty.hidden = !nothing;
      empty.textContent = emptyText();
    }
    if (nothing) {
      for (const name of Object.keys(layout)) if (/^[xy]axis/.test(name)) layout[name].visible = false;
      if (layout.scene) for (const name of ["xaxis", "yaxis", "zaxis"]) layout.scene[name].visible = false;
      layout.annotations = [];
    }
    chart.node._ltsTargets = targets;
    await Plotly.react(chart.node, data, layout, plotConfig);
    if (!chart.pointer) {
      attachPointer(chart.node);
      chart.pointer = true;
    }
    chart.node.dataset.points = String(shownCount(g));
    performance.mark(`lts:drawn-${key}`);
  }

  /** The 3-D view, then the next frame; the first time, window.LTS_3D_MS (ms since navigation start) for the bench.
   *  Plotly.js's 3-D trace is a chunk of its own, fetched and compiled the first time (a third of Plotly.js: no page
   *  load pays for it while the view is off). */
  async function drawThree(g) {
    try {
      await Plotly.load3d();
    } catch (err) {
      const status = document.getElementById("chart-status");
      if (status) status.textContent = `The 3-D view could not be loaded (${err.message}): turn it off and on to retry.`;
      return;  // the 2-D charts go on drawing
    }
    await draw("three", g);
    await nextFrame();
    if (window.LTS_3D_MS === undefined) window.LTS_3D_MS = performance.now();
  }

  /** The 2-D frontier views and the hypervolume first, then the table, then (when the page is idle) the 3-D view if
   *  it is shown: it costs as much as the rest together in software WebGL. The first time, window.LTS_CHARTS_2D_MS
   *  (2-D charts and hypervolume) and LTS_FIRST_DRAW_MS (every chart shown) are stamped for bench/dashboard.py and
   *  the browser test: milliseconds since navigation start, once the frame after the drawing has begun. */
  async function drawCharts() {
    performance.mark("lts:draw-start");
    const g = groups(store);
    const shown = shownCount(g);
    await draw("frontier", g);
    await drawHypervolume();
    await nextFrame();
    if (!firstDrawn) window.LTS_CHARTS_2D_MS = performance.now();
    const status = document.getElementById("chart-status");
    if (status) {
      status.textContent = `${LTS.int(shown)} measured of ${LTS.int(store.n)} candidates · ` +
        (g.predicted.length ? `${LTS.int(g.predicted.length)} predicted (hollow) · ` : "") +
        `${LTS.int(g.pareto.length)} on the frontier`;
    }
    ctx.renderTable();
    performance.mark("lts:table");
    if (show3d) {
      await idle();
      performance.mark("lts:idle");
      await drawThree(g);
    }
    if (!firstDrawn) {
      firstDrawn = true;
      window.LTS_FIRST_DRAW_MS = performance.now();
    }
  }

  let hvDrawn = -1;
  async function drawHypervolume(force = false) {
    const h = state.job.hypervolumes || [];
    if (!hvNode || (!force && hvDrawn === h.length)) return;
    hvDrawn = h.length;
    const layout = { ...baseLayout("Hypervolume per generation"), showlegend: false,
                     xaxis: axis("generation", { dtick: h.length > 20 ? undefined : 1 }), yaxis: axis("hypervolume") };
    if (!h.length) {
      Object.assign(layout.xaxis, { visible: false });
      Object.assign(layout.yaxis, { visible: false });
      layout.annotations = [{ text: "No generation has finished yet: a point per generation appears here.", showarrow: false, xref: "paper", yref: "paper",
                              x: 0.5, y: 0.5, font: { color: LTS.theme().muted } }];
    }
    await Plotly.react(hvNode, hvTraces(), layout, plotConfig);
    hvNode.dataset.points = String(h.length);
  }

  // One drawing at a time, spanning frames; changes that arrive meanwhile are drawn right after it, once.
  let drawing = false;
  let dirty = false;
  function scheduleDraw(first = null) {
    dirty = dirty || !first;
    if (drawing) {
      dirty = true;
      return;
    }
    drawing = true;
    requestAnimationFrame(async () => {
      if (first) await first();
      while (dirty) {
        dirty = false;
        await drawCharts();
      }
      drawing = false;
    });
  }

  // The 3-D view is drawn only while shown (a choice remembered in this browser): without a GPU it costs about a
  // second of the page's first load; turning it on draws just that chart.
  const SHOW_3D_KEY = "lts.searches.show3d";
  const toggle3d = document.getElementById("show-3d");
  let show3d = false;
  if (toggle3d && charts.three) {
    try {
      show3d = localStorage.getItem(SHOW_3D_KEY) === "1";
    } catch (err) { /* storage blocked: off */ }
    const apply = () => {
      toggle3d.checked = show3d;
      charts.three.node.closest(".chart").hidden = !show3d;
    };
    apply();
    toggle3d.addEventListener("change", () => {
      show3d = toggle3d.checked;
      try {
        localStorage.setItem(SHOW_3D_KEY, show3d ? "1" : "0");
      } catch (err) { /* storage blocked: this page only */ }
      apply();
      if (show3d && store.n) scheduleDraw(() => drawThree(groups(store)));
    });
  }

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    hvDrawn = -1;
    scheduleDraw();
  });


  return { scheduleDraw, drawHypervolume };
}
