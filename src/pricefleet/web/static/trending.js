/* Trending page: the biggest relative price moves (/v1/trending) over a window. */
"use strict";

(() => {
  const { api, el, money, when, productHref, showProblem, setStatus } = PF;

  function row(move) {
    const change = `${move.change > 0 ? "+" : ""}${(move.change * 100).toFixed(1)} %`;
    return el(
      "tr",
      { "data-site": move.site_id, "data-id": move.product_id },
      el("td", { "data-label": "Product" }, el("a", { href: productHref(move.site_id, move.product_id) }, move.name)),
      el("td", { "data-label": "Shop" }, move.site_id),
      el("td", { "data-label": "Was" }, money(move.old_price)),
      el("td", { "data-label": "Now" }, money(move.new_price)),
      el("td", { "data-label": "Change", class: move.change < 0 ? "down" : "up" }, change),
      el("td", { "data-label": "Since" }, when(move.since)),
    );
  }

  async function main() {
    const form = document.getElementById("trending-form");
    const query = PF.params();
    PF.prefill(form, query);
    PF.fillSites(document.getElementById("site"), query.get("site") || "");
    const wanted = new URLSearchParams({ days: query.get("days") || "7", direction: query.get("direction") || "drops", limit: "50" });
    if (query.get("site")) wanted.set("site", query.get("site"));
    try {
      const answer = await api(`/v1/trending?${wanted}`);
      const table = document.getElementById("moves");
      table.querySelector("tbody").replaceChildren(...answer.items.map(row));
      table.hidden = answer.items.length === 0;
      setStatus(
        "trending-status",
        answer.items.length ? `${answer.items.length} ${answer.direction} over ${answer.days} days.` : `No price ${answer.direction} over ${answer.days} days.`,
      );
    } catch (error) {
      setStatus("trending-status", "");
      showProblem(error);
    }
  }

  document.addEventListener("DOMContentLoaded", main);
})();
