/* LTS Studio pages: helpers shared by the page scripts. Plain browser JavaScript: no build step, no dependencies. */
"use strict";

const LTS = (() => {
  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /** fetch() with the session cookie and CSRF token; resolves to {ok, status, data} (data: parsed JSON or null). */
  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return result(fetch(url, init));
  }

  /** A fetch() promise -> {ok, status, data}. */
  async function result(pending) {
    let response;
    try {
      response = await pending;
    } catch (error) {
      return { ok: false, status: 0, data: { detail: `network error: ${error.message}` } };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  function jsonData(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /* One way to write each quantity on every page: the same rules and text as lts_web/numbers.py (its template
     filters), compared by tests/browser/test_pages_explain.py. Intl rounds half away from zero on the shortest decimal of
     the float, as the Python side does. */
  const intFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const sigFormat = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 });
  const finite = (n) => n != null && n !== "" && Number.isFinite(Number(n));
  const plain = (text) => Number(text.replace(/,/g, ""));
  /** Counts and tokens: 1048576 -> "1,048,576" */
  function int(n) { return finite(n) ? intFormat.format(Number(n)) : "–"; }
  /** 3 significant figures, whole numbers from 1,000 up, never an exponent: 0.0123456 -> "0.0123", 14380.2 -> "14,380" */
  function number(n) {
    if (!finite(n)) return "–";
    const x = Number(n);
    return Math.abs(x) >= 1000 ? intFormat.format(x) : sigFormat.format(x);
  }
  /** 132736 -> "133k", 1234567 -> "1.23M" (the exact count goes in a title: int) */
  function params(n) {
    if (!finite(n)) return "–";
    let text = number(n);
    for (const [scale, suffix] of [[1e3, "k"], [1e6, "M"], [1e9, "B"]]) {
      if (Math.abs(plain(text)) < 1000) break;
      text = number(Number(n) / scale);
      if (Math.abs(plain(text)) < 1000 || suffix === "B") return text + suffix;
    }
    return text;
  }
  /** Latency in seconds -> "47.5 ms" below 10 s, "12.3 s" from there */
  function latency(seconds) {
    if (!finite(seconds)) return "–";
    const x = Number(seconds);
    return Math.abs(x) < 10 ? `${number(x * 1000)} ms` : `${number(x)} s`;
  }
  /** Memory in MB -> "133 MB" */
  function memory(value) { return finite(value) ? `${number(value)} MB` : "–"; }
  /** A duration in s, m or h, two significant figures ("45 s", "3.2 min", "1.5 h"). */
  function duration(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return "–";
    if (seconds < 90) return `${seconds.toPrecision(2).replace(/\.0$/, "")} s`;
    if (seconds < 5400) return `${(seconds / 60).toPrecision(2)} min`;
    return `${(seconds / 3600).toPrecision(2)} h`;
  }
  const ms = latency;
  const mb = memory;

  /** el("a", {href: "/x", class: "y"}, "text", child) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Colours of the current light or dark theme (style.css custom properties), for the charts. */
  function theme() {
    const style = getComputedStyle(document.documentElement);
    const get = (name) => style.getPropertyValue(name).trim();
    return { fg: get("--fg"), muted: get("--muted"), border: get("--border"), bg: get("--bg"), panel: get("--panel"),
             accent: get("--accent"), bad: get("--bad"), ok: get("--ok"), warn: get("--warn"),
             pareto: get("--pareto") || "#e8590c" };
  }

  function debounce(fn, waitMs) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), waitMs); };
  }

  return { api, result, jsonData, csrfToken, int, number, params, latency, memory, ms, mb, el, theme, debounce, duration };
})();
