/* The candidate table: sorted, filtered and paginated client-side; 25 rows of DOM. */
import { generationNumber } from "./store.js";

/** ctx: {store, state: {job}, candidateUrl, trainUrl}. Returns renderTable(). */
export function createTable(ctx) {
  const { store, state, candidateUrl, trainUrl } = ctx;
  const TABLE_PAGE = 25;
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
    const generation = filterNodes.generation.value === "" ? null : Number(filterNodes.generation.value);  // 1 to N
    const paretoOnly = filterNodes.pareto.checked;
    const feasibleOnly = filterNodes.feasible.checked;
    const picked = [];
    for (let i = 0; i < store.n; i++) {
      if (text && !c.archid[i].includes(text)) continue;
      if (status && c.status[i] !== status) continue;
      if (generation !== null && generationNumber(c.generation[i]) !== generation) continue;
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
        LTS.el("td", { class: "mono" }, LTS.el("a", { href: candidateUrl(state.job.id, c.archid[i]), title: c.archid[i] },
                                               `${c.archid[i].slice(0, 17)}…`)),
        LTS.el("td", { class: "num" }, generationNumber(c.generation[i])), LTS.el("td", {}, c.origin[i]),
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


  return renderTable;
}
