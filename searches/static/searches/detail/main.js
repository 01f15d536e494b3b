/* Search detail, live: the first load takes every candidate as columns (GET searches/{id}/points/, the column names in
   the page data), then polls candidates/?job=ID&after=REVISION every 1.5 s for what changed, and redraws the charts
   once per poll that changed something. Polling stops when the search is finished. ES modules: store.js (the
   columns), charts.js, table.js; this one holds the job's state, its actions, the comparison and the polling. */
import { createCharts } from "./charts.js";
import { createStore } from "./store.js";
import { createTable } from "./table.js";

const page = LTS.jsonData("page-data");
const urls = page.urls;
const trainLink = document.getElementById("train-frontier");
const trainUrl = trainLink.dataset.trainUrl;
const POLL_MS = 1500;
const HIDDEN_POLL_MS = 10000; // a background tab still follows, slowly
const ERROR_POLL_MS = 5000;
const forJob = (template, id) => template.replace("/0/", `/${id}/`);
const candidateUrl = (jobId, archid) => forJob(urls.candidate, jobId).replace("ARCHID", encodeURIComponent(archid));
const isFinished = (status) => page.finished.includes(status);

const store = createStore(page.columns, page.columns_from_config);
const state = { job: page.job, compare: null }; // compare: {id, label, frontiers: {latency: [...rows], memory: [...], all: [...]}}
let after = null; // the revision the next poll starts after
const renderTable = createTable({ store, state, candidateUrl, trainUrl });
const { scheduleDraw, drawHypervolume } = createCharts({ page, store, state, candidateUrl, renderTable });

// ---- compare with another search's frontier ---------------------------------------------------------------------

const compareSelect = document.getElementById("compare");
let compareTimer = null;
async function loadCompare() {
  clearTimeout(compareTimer);
  const status = document.getElementById("compare-status");
  const id = compareSelect.value;
  if (!id) {
    state.compare = null;
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
    state.compare = null;
    status.textContent = `cannot compare: ${JSON.stringify(failed.data)}`;
  } else {
    const keys = Object.keys(sets);
    state.compare = { id: Number(id), label: `#${id}`, frontiers: Object.fromEntries(keys.map((k, i) => [k, answers[i].data.results])) };
    status.textContent = `#${id}: ${answers[2].data.results.length} on its 3-objective frontier`;
    const option = compareSelect.selectedOptions[0];
    if (option && /· (queued|running|waiting-for-device)$/.test(option.textContent)) {
      compareTimer = setTimeout(loadCompare, 15000); // that search still runs: follow it, slowly
    }
  }
  scheduleDraw();
}
if (compareSelect) compareSelect.addEventListener("change", loadCompare);


// ---- the job's state and actions ---------------------------------------------------------------------------------

const ACTIVE = ["queued", "running", "waiting-for-device"];

/** "12/40 measured"; measure "predicted": "measured N of M proposed, hardware time saved ~T", T the predicted
 *  candidates times the job's mean device time per measurement (views._progress says the same on first load). */
function measuredText(state, counts) {
  if ((state.spec.measure || "all") !== "predicted") return `${counts.measured}/${counts.candidates} measured`;
  if (state.spec.algorithm === "scored") {
    return `measured ${counts.measured} of ${LTS.int(page.space_size)} architectures in the space (the others only predicted, not kept)`;
  }
  const text = `measured ${counts.measured} of ${counts.candidates} proposed`;
  if (!counts.predicted || !counts.hardware_measured) return text;
  const saved = (counts.predicted * state.hardware_seconds) / counts.hardware_measured;
  return `${text}, hardware time saved ~${LTS.duration(saved)}`;
}

/** How the cost model's 90% intervals held in this search (views._predictions_text says the same on first load). */
function predictionsText(counts) {
  const checked = counts.predictions_checked || 0;
  if (!checked) return "";
  return `latency inside its 90% interval for ${LTS.int(counts.latency_inside || 0)} of ${LTS.int(checked)} measured ` +
    `candidates, peak memory for ${LTS.int(counts.memory_inside || 0)} of ${LTS.int(checked)} ` +
    `(over ${LTS.int(checked)}, ${coverageSpread(checked)})`;
}

/** One standard error of a share near 90% over n measurements, in points (views.coverage_spread). */
function coverageSpread(n) {
  return `±${Math.round(100 * Math.sqrt(0.09 / n))} points`;
}

function showJob(next) {
  state.job = next;
  const job = next;
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
  const predictions = predictionsText(counts);
  document.getElementById("predictions-text").textContent = predictions;
  document.getElementById("predictions").hidden = !predictions;
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
  const url = forJob(urls.action, state.job.id).replace(/cancel\/$/, `${action}/`);
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
  if (!isFinished(state.job.status) && !polling) startPolling();
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
  store.load(response.data.columns);
  after = response.data.revision;
  scheduleDraw();
  await poll(); // also brings the job's current state
}

async function poll() {
  if (after === null) return loadAll();
  const history = state.job.hypervolumes || [];
  const response = await LTS.api("GET", `${urls.poll}?job=${state.job.id}&after=${after}&hypervolumes_from=${history.length}`);
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
  for (const row of data.results) store.upsert(row);
  after = data.next_after;
  data.job.hypervolumes = history.slice(0, data.job.hypervolumes_from || 0).concat(data.job.hypervolumes);
  showJob(data.job);
  if (data.results.length) scheduleDraw();
  else drawHypervolume();
  if (isFinished(state.job.status)) {
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

showJob(state.job);
startPolling();
