/* The candidates of a search, client-side: one array per column (indexed by slot) and a Map id -> slot. The column
   names come from the page data (views.search_detail: the API's POINT_COLUMNS), not repeated here. */

/** A store of the columns ``columns`` (names); ``fromConfig``: the columns a polled row carries in its config. */
export function createStore(columns, fromConfig) {
  const FROM_CONFIG = new Set(fromConfig);
  const store = { n: 0, slot: new Map(), cols: {} };

  store.load = (data) => {
    for (const name of columns) store.cols[name] = data[name] || [];
    store.n = store.cols.id.length;
    store.slot = new Map();
    for (let i = 0; i < store.n; i++) store.slot.set(store.cols.id[i], i);
  };

  store.upsert = (row) => {
    let i = store.slot.get(row.id);
    if (i === undefined) {
      i = store.n++;
      store.slot.set(row.id, i);
    }
    for (const name of columns) store.cols[name][i] = FROM_CONFIG.has(name) ? row.config[name] : row[name];
  };

  // measure "predicted": a predicted candidate's point prediction, drawn as a hollow marker; never a measured value.
  store.predictedValue = (i, column) => {
    const p = store.cols.predicted[i];
    const values = p && p[column === "latency_s" ? "latency" : "memory"];
    return values ? values[0] : NaN;
  };

  for (const name of columns) store.cols[name] = [];
  return store;
}

/** A generation as the pages number it, 1 to N (the header's "generation 3/10", the hypervolume chart): the stored
 *  field, as the API and the exports give it, counts from 0. */
export function generationNumber(generation) {
  return generation + 1;
}

/** The hover card of candidate ``i``: lines of text (no per-point strings are built for the charts). */
export function describe(store, i) {
  const c = store.cols;
  if (c.status[i] === "predicted" && c.predicted[i]) {
    const p = c.predicted[i];
    return [c.archid[i],
            `n_layer ${c.n_layer[i]} · d_model ${c.d_model[i]} · d_inner ${c.d_inner[i]} · n_head ${c.n_head[i]}`,
            `proxy ${LTS.params(c.proxy[i])} · not measured`,
            `predicted latency ${LTS.ms(p.latency[0])} (${LTS.ms(p.latency[1])} – ${LTS.ms(p.latency[2])})`,
            `predicted memory ${LTS.mb(p.memory[0])} (${LTS.mb(p.memory[1])} – ${LTS.mb(p.memory[2])})`,
            `generation ${generationNumber(c.generation[i])} (${c.origin[i]}) · click to open, measure it there`];
  }
  return [c.archid[i], `n_layer ${c.n_layer[i]} · d_model ${c.d_model[i]} · d_inner ${c.d_inner[i]} · n_head ${c.n_head[i]}`,
          `vocab ${c.vocab_size[i]} · context ${c.max_sequence_length[i]}`,
          `proxy ${LTS.params(c.proxy[i])} · ${LTS.ms(c.latency_s[i])} · ${LTS.mb(c.memory_mb[i])}`,
          `generation ${generationNumber(c.generation[i])} (${c.origin[i]})${c.is_pareto[i] ? " · on the Pareto frontier" : ""}` +
          `${c.feasible[i] === false ? " · infeasible" : ""}`];
}

/** Slots of the measured candidates in three groups: Pareto, feasible, infeasible; and the predicted ones. */
export function groups(store) {
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
export function gatherPredicted(store, slots, column, scale = 1) {
  const out = new Float64Array(slots.length);
  for (let k = 0; k < slots.length; k++) out[k] = store.predictedValue(slots[k], column) * scale;
  return out;
}

export function gather(slots, values, scale = 1) {
  const out = new Float64Array(slots.length);
  for (let k = 0; k < slots.length; k++) out[k] = values[slots[k]] * scale;
  return out;
}

/** The slots of ``slots`` that no other of them dominates in this 2-D view (proxy maximized, ``values`` minimized),
 *  in order of proxy: a 3-objective frontier member can look dominated in a view that leaves one objective out. */
export function nonDominated2d(slots, proxy, values) {
  const order = Array.from(slots).filter((i) => values[i] != null).sort((a, b) => proxy[b] - proxy[a] || values[a] - values[b]);
  const kept = [];
  let best = Infinity;
  for (const i of order) {
    if (values[i] < best) {
      kept.push(i);
      best = values[i];
    }
  }
  return kept.reverse();
}
