/* pricefleet dashboard: what every page shares.
 *
 * Pages fetch the same-origin /v1/… JSON with the API key the user saved (localStorage), so
 * they see exactly what that key may read. Untrusted text (product names, URLs, errors) only
 * ever reaches the page through textContent or attributes, never innerHTML.
 */
"use strict";

const PF = (() => {
  const KEY_NAME = "pricefleet.apiKey";

  function apiKey() {
    try {
      return localStorage.getItem(KEY_NAME) || "";
    } catch {
      return ""; // storage disabled: no key
    }
  }

  function saveKey(value) {
    try {
      if (value) localStorage.setItem(KEY_NAME, value);
      else localStorage.removeItem(KEY_NAME);
      return true;
    } catch {
      return false;
    }
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /* GET (or `options.method`) a /v1/… path as JSON; an ApiError carries the problem's detail. */
  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    const key = apiKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let response;
    try {
      // no-cache: revalidate (ETag → 304) rather than reuse a stale answer.
      response = await fetch(path, { ...options, headers, cache: "no-cache", credentials: "same-origin" });
    } catch (error) {
      throw new ApiError(0, `the API did not answer (${error.message})`);
    }
    if (!response.ok) {
      let detail = response.statusText || `HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (body && typeof body.detail === "string") detail = body.detail;
      } catch {
        /* not a problem document: keep the status text */
      }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  function postJson(path, body) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  /* An element with attributes and children (strings become text nodes). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function money(amount, currency) {
    if (amount === null || amount === undefined) return "—";
    const value = Number(amount);
    if (!currency) return value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
    } catch {
      return `${amount} ${currency}`; // an unknown currency code
    }
  }

  function unitPrice(item) {
    if (item.unit_price === null || item.unit_price === undefined) return "—";
    return `${money(item.unit_price, item.currency)}/${item.unit || "unit"}`;
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} days ago`;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function secondsSince(iso) {
    return iso ? (Date.now() - Date.parse(iso)) / 1000 : null;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "—";
  }

  function productHref(site, id) {
    return `/product?${new URLSearchParams({ site, id })}`;
  }

  function apiProductPath(site, id) {
    return `/v1/products/${encodeURIComponent(site)}/${id.split("/").map(encodeURIComponent).join("/")}`;
  }

  /* A shop's own page, only when it is an http(s) URL (no javascript: links). */
  function safeUrl(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function explain(error) {
    if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
    if (error.status === 401) return `This needs an API key: open “API key” at the top and save one. (${error.message})`;
    if (error.status === 403) return `Your API key may not do this. (${error.message})`;
    if (error.status === 429) return `Too many requests for now; try again shortly. (${error.message})`;
    return error.message;
  }

  function showProblem(error) {
    const box = document.getElementById("problem");
    box.textContent = error ? explain(error) : "";
    box.hidden = !error;
  }

  function setStatus(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  /* Fill a <select> with the shops /v1/sites lists; returns that answer (or null). */
  async function fillSites(select, selected) {
    try {
      const sites = await api("/v1/sites");
      for (const site of sites.items) {
        select.append(el("option", { value: site.id, selected: site.id === selected }, `${site.name} (${site.id})`));
      }
      return sites;
    } catch (error) {
      showProblem(error);
      return null;
    }
  }

  function params() {
    return new URLSearchParams(window.location.search);
  }

  /* Put the page's query back into its form's fields. */
  function prefill(form, query) {
    for (const [name, value] of query) {
      const field = form.elements.namedItem(name);
      if (field && "value" in field && field.type !== "hidden") field.value = value;
    }
  }

  function initKeyForm() {
    const form = document.getElementById("key-form");
    const input = document.getElementById("api-key");
    const state = document.getElementById("key-state");
    const describe = () => {
      state.textContent = apiKey() ? "A key is saved in this browser." : "No key saved: public reads only.";
    };
    describe();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (value && !saveKey(value)) state.textContent = "This browser does not allow saving the key.";
      else describe();
      input.value = "";
      if (value) window.location.reload();
    });
    document.getElementById("key-forget").addEventListener("click", () => {
      saveKey("");
      describe();
    });
  }

  document.addEventListener("DOMContentLoaded", initKeyForm);

  return {
    ApiError,
    api,
    postJson,
    el,
    money,
    unitPrice,
    ago,
    duration,
    secondsSince,
    when,
    productHref,
    apiProductPath,
    safeUrl,
    showProblem,
    setStatus,
    fillSites,
    params,
    prefill,
  };
})();
