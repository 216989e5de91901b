/* Search page: words go to /v1/search (most relevant first); without words the filters go to
 * /v1/products, page by page. /v1/search filters by shop only, so with words the other
 * filters narrow its 100 best matches here, and the page says so. */
"use strict";

(() => {
  const { api, el, money, unitPrice, ago, secondsSince, productHref, showProblem, setStatus } = PF;
  const PAGE = 24;
  const SEARCH_LIMIT = 100;

  function resultItem(product) {
    const price = el("span", { class: "price" }, money(product.price, product.currency));
    const details = el(
      "p",
      { class: "meta" },
      el("span", { class: "shop" }, product.site_id),
      " · ",
      price,
      " · ",
      el("span", { class: "unit" }, unitPrice(product)),
    );
    if (product.is_discounted) {
      details.append(" ", el("span", { class: "badge" }, "discount"));
      if (product.regular_price) {
        details.append(" ", el("s", { "aria-label": "regular price" }, money(product.regular_price, product.currency)));
      }
    }
    const seen = el("p", { class: "meta" }, `${product.availability || "availability unknown"} · seen ${ago(secondsSince(product.last_seen))}`);
    return el(
      "li",
      { class: "result", "data-site": product.site_id, "data-id": product.id },
      el("a", { href: productHref(product.site_id, product.id), class: "result-link" }, product.name || product.id),
      details,
      seen,
    );
  }

  function narrows(product, query) {
    const min = query.get("min_price");
    const max = query.get("max_price");
    const category = query.get("category");
    const discounted = query.get("discounted");
    const price = product.price === null ? null : Number(product.price);
    if (min && (price === null || price < Number(min))) return false;
    if (max && (price === null || price > Number(max))) return false;
    if (category && product.category_id !== category) return false;
    if (discounted && String(Boolean(product.is_discounted)) !== discounted) return false;
    return true;
  }

  async function searchWords(query, list) {
    const words = new URLSearchParams({ q: query.get("q"), limit: String(SEARCH_LIMIT) });
    if (query.get("site")) words.set("site", query.get("site"));
    let answer = await api(`/v1/search?${words}`);
    let fuzzy = false;
    if (answer.items.length === 0) {
      words.set("fuzzy", "true");
      answer = await api(`/v1/search?${words}`);
      fuzzy = answer.items.length > 0;
    }
    const narrowing = ["min_price", "max_price", "category", "discounted"].some((name) => query.get(name));
    if (narrowing) {
      setStatus("search-note", `Words find the ${SEARCH_LIMIT} most relevant products; price, category and discount filters narrow those.`);
    }
    const products = answer.items.map((hit) => hit.product).filter((product) => narrows(product, query));
    list.replaceChildren(...products.map(resultItem));
    const similar = fuzzy ? " (similar names: no exact match)" : "";
    setStatus("results-status", `${products.length} result${products.length === 1 ? "" : "s"}${similar}`);
  }

  async function listProducts(query, list, more) {
    const filters = new URLSearchParams({ limit: String(PAGE) });
    for (const name of ["site", "category", "min_price", "max_price", "discounted", "sort"]) {
      if (query.get(name)) filters.set(name, query.get(name));
    }
    let cursor = null;
    let shown = 0;
    const page = async () => {
      if (cursor) filters.set("cursor", cursor);
      const answer = await api(`/v1/products?${filters}`);
      list.append(...answer.items.map(resultItem));
      shown += answer.items.length;
      cursor = answer.next_cursor;
      more.hidden = !cursor;
      setStatus("results-status", `${shown} product${shown === 1 ? "" : "s"}${cursor ? ", more available" : ""}`);
    };
    more.addEventListener("click", async () => {
      const first = list.children.length;
      try {
        await page();
        const next = list.children[first]?.querySelector("a");
        if (next) next.focus(); // keyboard users continue where the new results start
      } catch (error) {
        showProblem(error);
      }
    });
    await page();
  }

  async function main() {
    const form = document.getElementById("search-form");
    const query = PF.params();
    PF.prefill(form, query);
    const list = document.getElementById("results");
    const more = document.getElementById("more");
    PF.fillSites(document.getElementById("site"), query.get("site") || "");
    try {
      if (query.get("q")) await searchWords(query, list);
      else await listProducts(query, list, more);
    } catch (error) {
      setStatus("results-status", "No results to show.");
      showProblem(error);
    }
  }

  document.addEventListener("DOMContentLoaded", main);
})();
