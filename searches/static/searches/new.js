/* New search: preset picker, space editor with a live preview (POST /api/v1/spaces/preview/), submission to
   POST /api/v1/searches/ with the API's field errors (keyed by dotted paths such as "profiling.seq_len") shown next
   to their fields. */
"use strict";

(() => {
  const form = document.getElementById("new-search");
  if (!form) return;
  const presets = Object.fromEntries(LTS.jsonData("presets-data").map((p) => [p.name, p]));
  const presetSelect = form.elements.preset;
  const spaceInputs = [...form.querySelectorAll("[data-kind=space]")];
  const general = form.querySelector('[data-error-for="non_field_errors"]');
  const submitButton = document.getElementById("submit");
  const submitStatus = document.getElementById("submit-status");
  const spaceKey = (input) => input.name.slice("space.".length);

  // ---- space editor and preview ------------------------------------------------------------------------------------

  function fillPreset(name) {
    const preset = presets[name];
    if (!preset) return;
    for (const input of spaceInputs) input.value = preset.space[spaceKey(input)] ?? "";
  }

  /** "2, 4, 8" -> [2, 4, 8]; "64" -> 64; "range(1, 5)" is sent as written; "" leaves the field out. */
  function parseChoices(text) {
    const trimmed = text.trim().replace(/^\[(.*)\]$/, "$1");
    if (trimmed === "") return undefined;
    if (/^range\s*\(/.test(trimmed)) return trimmed;
    const values = trimmed.split(/[\s,]+/).filter(Boolean)
      .map((token) => (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(token) ? Number(token) : token));
    return values.length === 1 ? values[0] : values;
  }

  function spaceDocument() {
    const doc = {};
    for (const input of spaceInputs) {
      const value = parseChoices(input.value);
      if (value !== undefined) doc[spaceKey(input)] = value;
    }
    return doc;
  }

  const spaceSource = () => (presetSelect.value ? { preset: presetSelect.value } : { space: spaceDocument() });

  let previewSeq = 0;
  async function preview() {
    const seq = ++previewSeq;
    const sizeNode = document.getElementById("preview-size");
    const rangeNode = document.getElementById("preview-range");
    const response = await LTS.api("POST", form.dataset.previewUrl, spaceSource());
    if (seq !== previewSeq) return; // a newer edit has been sent since
    clearErrors((key) => key === "space" || key === "preset" || key.startsWith("space."));
    if (response.ok) {
      const { size, proxy_min: low, proxy_max: high } = response.data;
      sizeNode.textContent = `${LTS.int(size)} architecture${size === 1 ? "" : "s"}`;
      rangeNode.textContent = `· proxy ${LTS.params(low)} to ${LTS.params(high)} non-embedding parameters`;
      sizeNode.classList.remove("bad");
    } else {
      sizeNode.textContent = "not a valid space";
      sizeNode.classList.add("bad");
      rangeNode.textContent = "";
      showErrors(response.data || { detail: `preview failed (HTTP ${response.status})` }, { focus: false });
    }
  }
  const previewSoon = LTS.debounce(preview, 250);

  presetSelect.addEventListener("change", () => {
    if (presetSelect.value) fillPreset(presetSelect.value);
    preview();
  });
  for (const input of spaceInputs) {
    input.addEventListener("input", () => {
      presetSelect.value = ""; // an edited preset is a custom space
      previewSoon();
    });
  }

  // ---- the algorithm's parameters ---------------------------------------------------------------------------------

  // Which parameters each algorithm reads (searches/specs.py; the evolution's in searches/core/evolution.py):
  // "scored" its batch and smallest gain, the evolution and the random baseline the population sizes (the random
  // one mutates nothing), and every algorithm the exploration share when it measures what the cost model picks.
  // Without this script every parameter is shown.
  const POPULATION = ["init_population", "mutations_per_parent", "num_crossovers", "num_random_mix", "max_unseen"];
  const PARAMS_OF = {
    scored: ["batch", "min_gain"],
    evolution: [...POPULATION, "mutation_prob"],
    random: POPULATION,
  };
  const paramsFor = document.getElementById("params-for");

  /** The algorithm and policy the API will use: with no latency or memory objective it measures nothing, and
      "scored" (which needs measuring) gives way to its default, the evolution (as collect() sends it). */
  function choice() {
    const hardware = [...form.querySelectorAll("input[name=objectives]:checked")]
      .some((input) => input.value === "latency" || input.value === "memory");
    const algorithm = form.elements.algorithm.value;
    if (!hardware) return { algorithm: algorithm === "scored" ? "evolution" : algorithm, measure: "all" };
    return { algorithm, measure: form.elements.measure.value };
  }

  function showParams() {
    const { algorithm, measure } = choice();
    const shown = new Set([...(PARAMS_OF[algorithm] || []), ...(measure === "predicted" ? ["exploration"] : [])]);
    for (const input of form.querySelectorAll('[name^="params."]')) {
      const field = input.closest(".field");
      if (field) field.hidden = PARAMS_OF[algorithm] !== undefined && !shown.has(input.name.slice("params.".length));
    }
    paramsFor.textContent = PARAMS_OF[algorithm] ? `(${algorithm})` : "";
  }

  form.elements.algorithm.addEventListener("change", showParams);
  form.elements.measure.addEventListener("change", showParams);
  for (const input of form.querySelectorAll("input[name=objectives]")) input.addEventListener("change", showParams);

  // ---- errors ------------------------------------------------------------------------------------------------------

  function clearErrors(which = () => true) {
    for (const node of form.querySelectorAll("[data-error-for]")) {
      const key = node.dataset.errorFor;
      if (!which(key)) continue;
      node.textContent = "";
      const field = node.closest(".field");
      if (field && field.querySelector("[data-error-for]") === node) {
        field.classList.remove("invalid");
        for (const input of field.querySelectorAll("input, select")) input.removeAttribute("aria-invalid");
      }
    }
  }

  /** The container of an error key: itself, else its nearest dotted parent ("space.foo.bar" -> "space.foo"). */
  function containerFor(key) {
    for (let path = key; path; path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "") {
      const node = form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
      if (node) return { node, exact: path === key };
    }
    return { node: general, exact: false };
  }

  function showErrors(errors, { focus = true } = {}) {
    let first = null;
    let count = 0;
    for (const [key, value] of Object.entries(errors)) {
      const messages = (Array.isArray(value) ? value : [value]).map((m) => (typeof m === "string" ? m : JSON.stringify(m)));
      const isGeneral = key === "detail" || key === "non_field_errors";
      const { node, exact } = isGeneral ? { node: general, exact: true } : containerFor(key);
      const text = (exact ? "" : `${key}: `) + messages.join(" ");
      node.append(LTS.el("div", {}, text));
      count += 1;
      const field = node.closest(".field, fieldset, details, section");
      if (node.closest("details")) node.closest("details").open = true;
      if (field && field.classList.contains("field")) {
        field.classList.add("invalid");
        for (const input of field.querySelectorAll("input, select")) input.setAttribute("aria-invalid", "true");
      }
      if (!first) first = node;
    }
    if (focus && first) {
      first.scrollIntoView({ block: "center" });
      const input = first.closest(".field")?.querySelector("input, select");
      if (input) input.focus({ preventScroll: true });
    }
    return count;
  }

  // ---- submission --------------------------------------------------------------------------------------------------

  function setPath(target, path, value) {
    const keys = path.split(".");
    let node = target;
    for (const key of keys.slice(0, -1)) node = node[key] ??= {};
    node[keys[keys.length - 1]] = value;
  }

  /** The request body, or the fields the browser already knows are not numbers. */
  function collect() {
    const body = {};
    const errors = {};
    for (const input of form.querySelectorAll("[name][data-kind]")) {
      const kind = input.dataset.kind;
      if (kind === "space" || input.closest(".field[hidden]")) continue; // a hidden parameter: the API's default
      if (input.validity && input.validity.badInput) {
        // sent as text, so that the server refuses the request too and gives every other field's message with it
        errors[input.name] = ["enter a number"];
        setPath(body, input.name, "not a number");
        continue;
      }
      const raw = input.value.trim();
      if (kind === "text") {
        if (raw !== "" || input.name === "name") setPath(body, input.name, raw);
      } else if (raw !== "") {
        setPath(body, input.name, Number(raw));
      }
    }
    Object.assign(body, spaceSource());
    body.objectives = [...form.querySelectorAll("input[name=objectives]:checked")].map((i) => i.value);
    const device = form.querySelector("input[name=device]:checked");
    body.device = device && device.value ? device.value : null;
    if (!body.objectives.some((name) => name === "latency" || name === "memory")) {
      // Nothing is measured: the policy and the scoring do not apply; the API's defaults (evolution) do.
      delete body.measure;
      if (body.algorithm === "scored") delete body.algorithm;
    }
    return { body, errors };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const { body, errors } = collect();
    submitButton.disabled = true;
    submitStatus.textContent = "Submitting…";
    const response = await LTS.api("POST", form.dataset.createUrl, body);
    if (response.status === 201) {
      submitStatus.textContent = "Started: opening the search…";
      window.location.assign(form.dataset.detailUrl.replace(/\/0\/$/, `/${response.data.id}/`));
      return;
    }
    submitButton.disabled = false;
    submitStatus.textContent = "";
    const count = showErrors({ ...(response.data && typeof response.data === "object" ? response.data
      : { detail: `the server answered HTTP ${response.status}` }), ...errors });
    if (count && !general.textContent) {
      general.prepend(LTS.el("div", {}, `The search was not started: ${count} field${count === 1 ? "" : "s"} to correct.`));
    }
  });

  if (presetSelect.value) fillPreset(presetSelect.value);
  preview();
  showParams();
})();
