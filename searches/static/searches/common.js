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

  const intFormat = new Intl.NumberFormat("en-US");
  function int(n) { return n == null ? "–" : intFormat.format(n); }
  /** 265216 -> "265k", 12345678 -> "12.3M" */
  function params(n) {
    if (n == null) return "–";
    if (n >= 1e9) return (n / 1e9).toPrecision(3) + "B";
    if (n >= 1e6) return (n / 1e6).toPrecision(3) + "M";
    if (n >= 1e3) return (n / 1e3).toPrecision(3) + "k";
    return String(n);
  }
  const significant = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
  /** 14380.2 -> "14,380"; 0.012345 -> "0.01235" */
  function number(n) { return n == null ? "–" : significant.format(n); }
  /** A duration in s, m or h, two significant figures ("45 s", "3.2 min", "1.5 h"). */
  function duration(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return "–";
    if (seconds < 90) return `${seconds.toPrecision(2).replace(/\.0$/, "")} s`;
    if (seconds < 5400) return `${(seconds / 60).toPrecision(2)} min`;
    return `${(seconds / 3600).toPrecision(2)} h`;
  }
  function ms(seconds) { return seconds == null ? "–" : (seconds * 1000).toPrecision(3) + " ms"; }
  function mb(value) { return value == null ? "–" : value.toPrecision(4) + " MB"; }

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

  return { api, result, jsonData, csrfToken, int, number, params, ms, mb, el, theme, debounce, duration };
})();
