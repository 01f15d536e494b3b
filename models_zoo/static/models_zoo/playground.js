/* Generation playground: one stream per chosen model (POST /api/v1/models/<id>/generate/stream, server-sent events
   read through fetch so the request can carry a body), side by side, with time to first token and tokens per second
   measured here in the browser, and each model's proxy, perplexity and measured costs. */
"use strict";

(() => {
  const { el, csrfToken, params, number, ms, mb } = LTS;
  /** 0.0182 -> "18.2 ms", 5.84 -> "5.84 s" */
  const duration = (seconds) => (seconds == null ? "–" : seconds < 1 ? ms(seconds) : `${seconds.toPrecision(3)} s`);
  const form = document.getElementById("playground");
  const outputs = document.getElementById("outputs");
  const stopButton = document.getElementById("stop");
  const options = new Map(LTS.jsonData("model-options").map((o) => [String(o.id), o]));
  let controllers = [];

  function showErrors(errors) {
    form.querySelectorAll("ul.errorlist").forEach((ul) => { ul.replaceChildren(); });
    for (const [field, messages] of Object.entries(errors || {})) {
      const ul = form.querySelector(`ul.errorlist[data-for="${field}"]`) || form.querySelector('ul.errorlist[data-for="prompt"]');
      for (const message of [].concat(messages)) ul.append(el("li", {}, field === "detail" || !ul.dataset.for || ul.dataset.for === field ? message : `${field}: ${message}`));
    }
  }

  function body() {
    const value = (id) => document.getElementById(id).value.trim();
    const data = { prompt: document.getElementById("prompt").value, greedy: document.getElementById("greedy").checked };
    for (const id of ["max_new_tokens", "top_k", "seed"]) if (value(id) !== "") data[id] = Number(value(id));
    for (const id of ["temperature", "top_p", "repetition_penalty"]) if (value(id) !== "") data[id] = Number(value(id));
    return data;
  }

  function facts(model) {
    const costs = model.costs.map((c) => `${c.device} (${c.backend}, ${c.mode} ${c.seq_len}): ${ms(c.latency_s)}, ${mb(c.memory_mb)}`);
    return el("p", { class: "stats" },
      `proxy ${params(model.proxy)} · total ${params(model.total_params)} · val ppl ${number(model.val_ppl)}`,
      el("br"), costs.length ? costs.join(" · ") : "no latency/memory measurement yet");
  }

  function column(model) {
    const text = el("div", { class: "output", "data-model": model.id });
    const stats = el("p", { class: "stats live" }, "waiting for a worker…");
    const panel = el("section", { class: "panel" }, el("h2", {}, model.name), facts(model), text, stats);
    outputs.append(panel);
    return { text, stats };
  }

  /** Reads server-sent events from a fetch response; calls onEvent(name, data) for each. */
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  }

  async function run(model, payload) {
    const { text, stats } = column(model);
    const controller = new AbortController();
    controllers.push(controller);
    const t0 = performance.now();
    let firstAt = null, tokens = 0;
    let response;
    try {
      response = await fetch(`/api/v1/models/${model.id}/generate/stream`, {
        method: "POST", credentials: "same-origin", signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(payload),
      });
    } catch (error) {
      stats.replaceChildren(el("span", { class: "error" }, `network error: ${error.message}`));
      return;
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (error) { data = { detail: response.statusText }; }
      if (response.status === 400) showErrors(data);
      stats.replaceChildren(el("span", { class: "error" }, data.detail || `${response.status}: see the form`));
      return;
    }
    text.append(el("span", { class: "prompt-echo" }, payload.prompt));
    try {
      await readEvents(response, (name, data) => {
        if (name === "start") {
          stats.textContent = `started after ${duration(data.queued_s)} in the queue${data.loaded_from_cache ? "" : `, model loaded in ${duration(data.load_s)}`}`;
        } else if (name === "text") {
          const now = performance.now();
          if (firstAt === null) firstAt = now;
          tokens = data.tokens;
          text.append(data.text);
          const rate = tokens > 1 && now > firstAt ? ((tokens - 1) / ((now - firstAt) / 1000)) : null;
          stats.textContent = `${tokens} tokens · first after ${duration((firstAt - t0) / 1000)} · ${rate ? number(rate) : "–"} tokens/s`;
        } else if (name === "done") {
          stats.textContent = `${data.token_ids.length} tokens, stopped by ${data.stopped_by.replaceAll("_", " ")} · ` +
            `first token after ${duration(firstAt === null ? null : (firstAt - t0) / 1000)} here (${duration(data.time_to_first_token_s)} in the worker) · ` +
            `${number(data.tokens_per_s)} tokens/s`;
          stats.classList.remove("live");
          stats.classList.add("finished");
        } else if (name === "error") {
          stats.replaceChildren(el("span", { class: "error" }, data.detail));
        }
      });
    } catch (error) {
      if (error.name !== "AbortError") stats.replaceChildren(el("span", { class: "error" }, `stream broken: ${error.message}`));
      else stats.textContent += " · stopped";
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showErrors({});
    const chosen = Array.from(document.getElementById("models").selectedOptions).map((o) => options.get(o.value));
    if (chosen.length < 1 || chosen.length > 3) {
      showErrors({ models: ["choose one to three models"] });
      return;
    }
    outputs.replaceChildren();
    controllers = [];
    const payload = body();
    document.getElementById("generate").disabled = true;
    stopButton.disabled = false;
    await Promise.all(chosen.map((model) => run(model, payload)));
    document.getElementById("generate").disabled = false;
    stopButton.disabled = true;
  });
  stopButton.addEventListener("click", () => controllers.forEach((c) => c.abort()));
})();
