/* Search detail, live: the first load takes every candidate as columns (GET searches/{id}/points/), then polls
   candidates/?job=ID&after=REVISION every 1.5 s for what changed, keeps the candidates client-side (columns indexed by
   slot, a Map id -> slot), and redraws the charts once per poll that changed something: WebGL traces (scattergl,
   scatter3d) fed typed arrays through Plotly.react, no DOM per point. Polling stops when the search is finished. */
"use strict";

(() => {
  const page = LTS.jsonData("page-data");
  const urls = page.urls;
  let job = page.job;
  const trainLink = document.getElementById("train-frontier");
  const trainUrl = trainLink.dataset.trainUrl;
  const POLL_MS = 1500;
  const HIDDEN_POLL_MS = 10000; // a background tab still follows, slowly
  const ERROR_POLL_MS = 5000;
  const TABLE_PAGE = 25;
  const forJob = (template, id) => template.replace("/0/", `/${id}/`);
  const candidateUrl = (jobId, archid) => forJob(urls.candidate, jobId).replace("ARCHID", encodeURIComponent(archid));
  const isFinished = (status) => page.finished.includes(status);

  // ---- the candidates, client-side ---------------------------------------------------------------------------------

  const COLUMNS = ["id", "archid", "generation", "origin", "n_layer", "d_model", "d_inner", "n_head", "vocab_size",
                   "max_sequence_length", "proxy", "total_params", "latency_s", "memory_mb", "status", "feasible",
                   "is_pareto", "predicted"];
  const FROM_CONFIG = new Set(["vocab_size", "max_sequence_length"]);
  // measure "predicted": a predicted candidate's point prediction, drawn as a hollow marker; never a measured value.
  const predictedValue = (i, column) => {
    const p = store.cols.predicted[i];
    const values = p && p[column === "latency_s" ? "latency" : "memory"];
    return values ? values[0] : NaN;
  };
  const store = { n: 0, slot: new Map(), cols: {} };
  let after = null; // the revision the next poll starts after

  function loadColumns(columns) {
    for (const name of COLUMNS) store.cols[name] = columns[name] || [];
    store.n = store.cols.id.length;
    store.slot = new Map();
    for (let i = 0; i < store.n; i++) store.slot.set(store.cols.id[i], i);
  }

  function upsert(row) {
    let i = store.slot.get(row.id);
    if (i === undefined) {
      i = store.n++;
      store.slot.set(row.id, i);
    }
    for (const name of COLUMNS) store.cols[name][i] = FROM_CONFIG.has(name) ? row.config[name] : row[name];
  }

  /** The hover card of a candidate: lines of text (no per-point strings are built for the charts). */
  function describe(i) {
    const c = store.cols;
    if (c.status[i] === "predicted" && c.predicted[i]) {
      const p = c.predicted[i];
      return [c.archid[i],
              `n_layer ${c.n_layer[i]} · d_model ${c.d_model[i]} · d_inner ${c.d_inner[i]} · n_head ${c.n_head[i]}`,
              `proxy ${LTS.params(c.proxy[i])} · not measured`,
              `predicted latency ${LTS.ms(p.latency[0])} (${LTS.ms(p.latency[1])} – ${LTS.ms(p.latency[2])})`,
              `predicted memory ${LTS.mb(p.memory[0])} (${LTS.mb(p.memory[1])} – ${LTS.mb(p.memory[2])})`,
              `generation ${c.generation[i]} (${c.origin[i]}) · click to open, measure it there`];
    }
    return [c.archid[i], `n_layer ${c.n_layer[i]} · d_model ${c.d_model[i]} · d_inner ${c.d_inner[i]} · n_head ${c.n_head[i]}`,
            `vocab ${c.vocab_size[i]} · context ${c.max_sequence_length[i]}`,
            `proxy ${LTS.params(c.proxy[i])} · ${LTS.ms(c.latency_s[i])} · ${LTS.mb(c.memory_mb[i])}`,
            `generation ${c.generation[i]} (${c.origin[i]})${c.is_pareto[i] ? " · on the Pareto frontier" : ""}` +
            `${c.feasible[i] === false ? " · infeasible" : ""}`];
  }

  /** Slots of the measured candidates in three groups: Pareto, feasible, infeasible; and the predicted ones. */
  function groups() {
    const c = store.cols;
    const counts = [0, 0, 0, 0];
    const group = new Int8Array(store.n).fill(-1);
    for (let i = 0; i < store.n; i++) {
      if (c.status[i] === "predicted" && c.predicted[i]) group[i] = 3;
      else if (c.status[i] !== "measured" || c.latency_s[i] == null || c.memory_mb[i] == null) continue;
      else group[i] = c.is_pareto[i] ? 0 : c.feasible[i] === false ? 2 : 1;
      counts[group[i]]++;
    }
    const slots = counts.map((k) => new Int32Array(k));
    const fill = [0, 0, 0, 0];
    for (let i = 0; i < store.n; i++) if (group[i] >= 0) slots[group[i]][fill[group[i]]++] = i;
    return { pareto: slots[0], feasible: slots[1], infeasible: slots[2], predicted: slots[3] };
  }

  /** Values of a predicted objective column for ``slots`` (their point predictions). */
  function gatherPredicted(slots, column, scale = 1) {
    const out = new Float64Array(slots.length);
    for (let k = 0; k < slots.length; k++) out[k] = predictedValue(slots[k], column) * scale;
    return out;
  }

  function gather(slots, values, scale = 1) {
    const out = new Float64Array(slots.length);
    for (let k = 0; k < slots.length; k++) out[k] = values[slots[k]] * scale;
    return out;
  }

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
  let compare = null; // {id, label, frontiers: {latency: [...rows], memory: [...], all: [...]}}

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
    const type = three ? "scatter3d" : "scattergl";
    const stride = three ? Math.max(1, Math.ceil(g.feasible.length / MAX_3D_POINTS)) : 1;
    const feasible = stride > 1 ? g.feasible.filter((_, k) => k % stride === 0) : g.feasible;
    const generations = gather(g.pareto, store.cols.generation);
    // Smaller markers for denser clouds: less overdraw to read through, and in software WebGL (no GPU) the frame after
    // drawing 2 x 100,000 points took 1.7 s at size 5 and 1.0 s at size 3.
    const n = g.feasible.length + g.infeasible.length;
    const size = three ? (n > 20000 ? 2 : n > 2000 ? 3 : 4) : n > 20000 ? 3 : n > 2000 ? 4 : 6;
    const data = [
      { type, mode: "markers", name: stride > 1 ? `candidates (1 in ${stride})` : "candidates", hoverinfo: "none",
        ...coords(feasible), marker: { color: t.accent, size, opacity: three ? 0.35 : n > 20000 ? 0.4 : 0.55 } },
      { type, mode: "markers", name: "infeasible", hoverinfo: "none", ...coords(g.infeasible),
        marker: { color: t.muted, symbol: "x", size, opacity: 0.5 } },
      { type, mode: "markers", name: "Pareto frontier", hoverinfo: "none", ...coords(g.pareto),
        marker: { color: generations, colorscale: GENERATION_SCALE, cmin: 0, cmax: Math.max(1, job.generation - 1),
                  size: three ? 5 : 10, symbol: "diamond", line: { color: t.fg, width: 1 }, showscale: !three,
                  colorbar: { title: { text: "generation" }, thickness: 10, len: 0.8, outlinewidth: 0,
                              tickfont: { color: t.muted }, dtick: job.generation <= 12 ? 1 : undefined } } },
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
        y: predicted ? gatherPredicted(slots, panel.y, panel.scale) : gather(slots, c[panel.y], panel.scale) }));
      const rows = compare && compare.frontiers[panel.compareKey];
      if (rows) {
        const sorted = [...rows].sort((a, b) => a.proxy - b.proxy);
        set.data.push({ type: "scattergl", mode: "lines+markers", name: `frontier of ${compare.label}`, hoverinfo: "none",
                        line: { shape: "hv", color: t.bad, width: 1.5 }, marker: { color: t.bad, size: 8, symbol: "square-open" },
                        x: sorted.map((r) => r.proxy), y: sorted.map((r) => r[panel.y] * panel.scale) });
        set.targets.push({ rows: sorted, job: compare.id });
      }
      for (const trace of set.data) {
        Object.assign(trace, { xaxis: panel.xaxis, yaxis: panel.yaxis, legendgroup: trace.name, showlegend: p === 0 });
        if (p > 0) trace.marker.showscale = false;
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
      y: predicted ? gatherPredicted(slots, "latency_s", 1000) : gather(slots, c.latency_s, 1000),
      z: predicted ? gatherPredicted(slots, "memory_mb") : gather(slots, c.memory_mb) }), { three: true });
    const rows = compare && compare.frontiers.all;
    if (rows) {
      const t = LTS.theme();
      set.data.push({ type: "scatter3d", mode: "markers", name: `frontier of ${compare.label}`, hoverinfo: "none",
                      x: rows.map((r) => r.proxy), y: rows.map((r) => r.latency_s * 1000), z: rows.map((r) => r.memory_mb),
                      marker: { color: t.bad, size: 4, symbol: "square" } });
      set.targets.push({ rows, job: compare.id });
    }
    return set;
  }

  function describeCompared(r, jobId) {
    return [`${r.archid} (search #${jobId})`, `n_layer ${r.n_layer} · d_model ${r.d_model} · d_inner ${r.d_inner} · n_head ${r.n_head}`,
            `proxy ${LTS.params(r.proxy)} · ${LTS.ms(r.latency_s)} · ${LTS.mb(r.memory_mb)}`,
            `on its frontier (generation ${r.generation})`];
  }

  function layout3d(title) {
    const scene = { xaxis: axis("proxy"), yaxis: axis("latency (ms)"), zaxis: axis("memory (MB)"),
                    bgcolor: "rgba(0,0,0,0)", camera: { eye: { x: 1.6, y: -1.6, z: 0.9 } } };
    return { ...baseLayout(title), scene, margin: { l: 0, r: 0, t: 40, b: 24 } };
  }

  function hvTraces() {
    const t = LTS.theme();
    const h = job.hypervolumes || [];
    return [{ type: "scatter", mode: "lines+markers", name: "hypervolume", x: h.map((e) => e.generation),
              y: h.map((e) => e.hypervolume), text: h.map((e) => `frontier ${e.frontier_size} of ${e.candidates ?? "?"}`),
              hovertemplate: "generation %{x}<br>hypervolume %{y:.4g}<br>%{text}<extra></extra>",
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
      return target.slots ? { job: job.id, slot: target.slots[point.pointNumber] }
        : { job: target.job, row: target.rows[point.pointNumber] };
    };
    node.on("plotly_hover", (event) => {
      const hit = pointed(event);
      if (!hit) return;
      const lines = hit.row ? describeCompared(hit.row, hit.job) : describe(hit.slot);
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

  const shownCount = (g) => g.pareto.length + g.feasible.length + g.infeasible.length;  // measured ones

  async function draw(key, g) {
    const chart = charts[key];
    if (!chart) return;
    const { data, targets } = key === "three" ? traces3d(g) : tracesFrontier(g);
    const layout = key === "three" ? layout3d(chart.title) : layoutFrontier(chart.node);
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
    const g = groups();
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
    renderTable();
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
    const h = job.hypervolumes || [];
    if (!hvNode || (!force && hvDrawn === h.length)) return;
    hvDrawn = h.length;
    const layout = { ...baseLayout("Hypervolume per generation"), showlegend: false,
                     xaxis: axis("generation", { dtick: h.length > 20 ? undefined : 1 }), yaxis: axis("hypervolume") };
    if (!h.length) {
      Object.assign(layout.xaxis, { visible: false });
      Object.assign(layout.yaxis, { visible: false });
      layout.annotations = [{ text: "no generation finished yet", showarrow: false, xref: "paper", yref: "paper",
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
      if (show3d && store.n) scheduleDraw(() => drawThree(groups()));
    });
  }

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    hvDrawn = -1;
    scheduleDraw();
  });

  // ---- compare with another search's frontier ---------------------------------------------------------------------

  const compareSelect = document.getElementById("compare");
  let compareTimer = null;
  async function loadCompare() {
    clearTimeout(compareTimer);
    const status = document.getElementById("compare-status");
    const id = compareSelect.value;
    if (!id) {
      compare = null;
      status.textContent = "";
      scheduleDraw();
      return;
    }
    status.textContent = "loading its frontier…";
    const base = forJob(urls.frontier, id);
    const sets = { latency: "proxy,latency", memory: "proxy,memory", all: "proxy,latency,memory" };
    const answers = await Promise.all(Object.values(sets).map((o) => LTS.api("GET", `${base}?objectives=${o}`)));
    if (compareSelect.value !== id) return; // changed meanwhile
    const failed = answers.find((a) => !a.ok);
    if (failed) {
      compare = null;
      status.textContent = `cannot compare: ${JSON.stringify(failed.data)}`;
    } else {
      const keys = Object.keys(sets);
      compare = { id: Number(id), label: `#${id}`, frontiers: Object.fromEntries(keys.map((k, i) => [k, answers[i].data.results])) };
      status.textContent = `#${id}: ${answers[2].data.results.length} on its 3-objective frontier`;
      const option = compareSelect.selectedOptions[0];
      if (option && /· (queued|running|waiting-for-device)$/.test(option.textContent)) {
        compareTimer = setTimeout(loadCompare, 15000); // that search still runs: follow it, slowly
      }
    }
    scheduleDraw();
  }
  if (compareSelect) compareSelect.addEventListener("change", loadCompare);

  // ---- the candidate table: sorted, filtered and paginated client-side; 25 rows of DOM ---------------------------

  const tableState = { sort: "generation", desc: true, page: 0 };
  const tbody = document.querySelector("#candidates tbody");
  const filterNodes = {
    archid: document.getElementById("filter-archid"), status: document.getElementById("filter-status"),
    generation: document.getElementById("filter-generation"), pareto: document.getElementById("filter-pareto"),
    feasible: document.getElementById("filter-feasible"),
  };

  function renderTable() {
    const c = store.cols;
    const text = filterNodes.archid.value.trim().toLowerCase();
    const status = filterNodes.status.value;
    const generation = filterNodes.generation.value === "" ? null : Number(filterNodes.generation.value);
    const paretoOnly = filterNodes.pareto.checked;
    const feasibleOnly = filterNodes.feasible.checked;
    const picked = [];
    for (let i = 0; i < store.n; i++) {
      if (text && !c.archid[i].includes(text)) continue;
      if (status && c.status[i] !== status) continue;
      if (generation !== null && c.generation[i] !== generation) continue;
      if (paretoOnly && !c.is_pareto[i]) continue;
      if (feasibleOnly && c.feasible[i] !== true) continue;
      picked.push(i);
    }
    const key = c[tableState.sort];
    const direction = tableState.desc ? -1 : 1;
    const rows = Int32Array.from(picked).sort((a, b) => {
      const x = key[a];
      const y = key[b];
      if (x === y) return (a - b) * direction;
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : 1) * direction;
    });
    const pages = Math.max(1, Math.ceil(rows.length / TABLE_PAGE));
    tableState.page = Math.min(tableState.page, pages - 1);
    const start = tableState.page * TABLE_PAGE;
    const fragment = document.createDocumentFragment();
    for (const i of rows.subarray(start, start + TABLE_PAGE)) {
      fragment.append(LTS.el("tr", {},
        LTS.el("td", { class: "mono" }, LTS.el("a", { href: candidateUrl(job.id, c.archid[i]), title: c.archid[i] },
                                               `${c.archid[i].slice(0, 17)}…`)),
        LTS.el("td", { class: "num" }, c.generation[i]), LTS.el("td", {}, c.origin[i]),
        LTS.el("td", { class: "num" }, c.n_layer[i]), LTS.el("td", { class: "num" }, c.d_model[i]),
        LTS.el("td", { class: "num" }, c.d_inner[i]), LTS.el("td", { class: "num" }, c.n_head[i]),
        LTS.el("td", { class: "num", title: LTS.int(c.proxy[i]) }, LTS.params(c.proxy[i])),
        LTS.el("td", { class: "num", title: LTS.int(c.total_params[i]) }, LTS.params(c.total_params[i])),
        LTS.el("td", { class: "num" }, LTS.ms(c.latency_s[i])), LTS.el("td", { class: "num" }, LTS.mb(c.memory_mb[i])),
        LTS.el("td", {}, LTS.el("span", { class: `status status-${c.status[i]}` }, c.status[i]),
               c.feasible[i] === false ? LTS.el("span", { class: "muted small" }, " infeasible") : null),
        LTS.el("td", {}, c.is_pareto[i] ? "◆ " : "", c.is_pareto[i]
          ? LTS.el("a", { href: `${trainUrl}?candidate=${c.id[i]}`, title: "train this architecture" }, "train")
          : null)));
    }
    tbody.replaceChildren(fragment);
    document.getElementById("table-count").textContent =
      `${LTS.int(rows.length)}${rows.length === store.n ? "" : ` of ${LTS.int(store.n)}`}`;
    document.getElementById("page-info").textContent = `page ${tableState.page + 1} of ${pages}`;
    document.getElementById("page-prev").disabled = tableState.page === 0;
    document.getElementById("page-next").disabled = tableState.page >= pages - 1;
    for (const th of document.querySelectorAll("#candidates th[data-sort]")) {
      const active = th.dataset.sort === tableState.sort;
      th.setAttribute("aria-sort", active ? (tableState.desc ? "descending" : "ascending") : "none");
    }
  }

  for (const th of document.querySelectorAll("#candidates th[data-sort]")) {
    const sortBy = () => {
      if (tableState.sort === th.dataset.sort) tableState.desc = !tableState.desc;
      else Object.assign(tableState, { sort: th.dataset.sort, desc: ["proxy", "total_params", "generation", "is_pareto"].includes(th.dataset.sort) });
      tableState.page = 0;
      renderTable();
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortBy();
      }
    });
  }
  const refilter = LTS.debounce(() => { tableState.page = 0; renderTable(); }, 150);
  for (const node of Object.values(filterNodes)) node.addEventListener(node.type === "checkbox" || node.tagName === "SELECT" ? "change" : "input", refilter);
  document.getElementById("page-prev").addEventListener("click", () => { tableState.page -= 1; renderTable(); });
  document.getElementById("page-next").addEventListener("click", () => { tableState.page += 1; renderTable(); });

  // ---- the job's state and actions ---------------------------------------------------------------------------------

  const ACTIVE = ["queued", "running", "waiting-for-device"];

  /** "12/40 measured"; measure "predicted": "measured N of M proposed, hardware time saved ~T", T the predicted
   *  candidates times the job's mean device time per measurement (views._progress says the same on first load). */
  function measuredText(state, counts) {
    if ((state.spec.measure || "all") !== "predicted") return `${counts.measured}/${counts.candidates} measured`;
    if (state.spec.algorithm === "scored") {
      return `measured ${counts.measured} of ${LTS.int(page.space_size)} in the space (the rest predicted)`;
    }
    const text = `measured ${counts.measured} of ${counts.candidates} proposed`;
    if (!counts.predicted || !counts.hardware_measured) return text;
    const saved = (counts.predicted * state.hardware_seconds) / counts.hardware_measured;
    return `${text}, hardware time saved ~${LTS.duration(saved)}`;
  }

  function showJob(next) {
    job = next;
    const badge = document.getElementById("job-status");
    badge.textContent = job.status === "waiting-for-device" ? "waiting for device" : job.status;
    badge.className = `status status-${job.status}`;
    const counts = { candidates: 0, measured: 0, measuring: 0, failed: 0, pareto: 0, ...(job.counts || {}) };
    const h = job.hypervolumes || [];
    const budget = job.spec.budget.generations;
    const percent = job.status === "completed" ? 100 : Math.min(100, Math.round((100 * h.length) / Math.max(budget, 1)));
    document.getElementById("progress-bar").style.width = `${percent}%`;
    const parts = [`generation ${h.length}/${budget}`, measuredText(job, counts)];
    if (counts.measuring) parts.push(`${counts.measuring} measuring`);
    if (counts.failed) parts.push(`${counts.failed} failed`);
    parts.push(`frontier ${counts.pareto}`);
    if (h.length) parts.push(`hypervolume ${LTS.number(h[h.length - 1].hypervolume)}`);
    document.getElementById("progress-text").textContent = parts.join(" · ");
    const error = document.getElementById("job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    const show = { pause: ACTIVE.includes(job.status), resume: job.status === "paused",
                   cancel: !isFinished(job.status), retry: counts.failed > 0 && job.status !== "cancelled" };
    for (const button of document.querySelectorAll("#actions [data-action]")) {
      if (button.dataset.action in show) button.hidden = !show[button.dataset.action];
    }
  }

  // "Train frontier": one training run per current Pareto candidate, chosen on the training form.
  trainLink.addEventListener("click", () => {
    const ids = [];
    for (let i = 0; i < store.n; i++) if (store.cols.is_pareto[i]) ids.push(store.cols.id[i]);
    trainLink.href = ids.length ? `${trainUrl}?candidates=${ids.join(",")}` : trainUrl;
  });

  document.getElementById("actions").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "cancel" && !window.confirm("Cancel this search? Measurements in flight are stopped.")) return;
    const errorBox = document.getElementById("action-error");
    errorBox.textContent = "";
    button.disabled = true;
    const url = forJob(urls.action, job.id).replace(/cancel\/$/, `${action}/`);
    const response = await LTS.api("POST", url, action === "clone" ? {} : undefined);
    button.disabled = false;
    if (!response.ok) {
      errorBox.textContent = (response.data && response.data.detail) || `${action} failed (HTTP ${response.status})`;
      return;
    }
    if (action === "clone") {
      window.location.assign(forJob(urls.detail, response.data.id));
      return;
    }
    showJob(response.data);
    if (!isFinished(job.status) && !polling) startPolling();
  });

  // ---- polling -----------------------------------------------------------------------------------------------------

  let polling = false;
  let pollTimer = null;
  const live = document.getElementById("live");

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  async function loadAll() {
    // The first load was requested by the page's head while Plotly.js compiled; later reloads ask again.
    const early = window.LTS_POINTS;
    window.LTS_POINTS = undefined;
    const response = await (early ? LTS.result(early) : LTS.api("GET", urls.points));
    if (!response.ok) {
      live.textContent = `loading failed (HTTP ${response.status}); retrying`;
      schedulePoll(ERROR_POLL_MS);
      return;
    }
    performance.mark("lts:points-received");
    loadColumns(response.data.columns);
    after = response.data.revision;
    scheduleDraw();
    await poll(); // also brings the job's current state
  }

  async function poll() {
    if (after === null) return loadAll();
    const history = job.hypervolumes || [];
    const response = await LTS.api("GET", `${urls.poll}?job=${job.id}&after=${after}&hypervolumes_from=${history.length}`);
    if (!response.ok) {
      live.textContent = `update failed (HTTP ${response.status}); retrying`;
      schedulePoll(ERROR_POLL_MS);
      return;
    }
    const data = response.data;
    if (data.truncated) { // too far behind for one poll: reload everything
      after = null;
      return loadAll();
    }
    for (const row of data.results) upsert(row);
    after = data.next_after;
    data.job.hypervolumes = history.slice(0, data.job.hypervolumes_from || 0).concat(data.job.hypervolumes);
    showJob(data.job);
    if (data.results.length) scheduleDraw();
    else drawHypervolume();
    if (isFinished(job.status)) {
      polling = false;
      live.textContent = "";
      return;
    }
    polling = true;
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    schedulePoll(document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  function startPolling() {
    polling = true;
    poll();
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && polling) schedulePoll(0);
  });

  showJob(job);
  startPolling();
})();
