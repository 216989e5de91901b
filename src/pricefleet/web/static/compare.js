/* Compare page: the offers of one product across shops (/v1/compare), cheapest per kg, litre
 * or item first; the cheapest offer of each unit is marked (in words, not colour alone), and
 * each offer says how long ago it was last seen, flagged stale past the freshness window. */
"use strict";

(() => {
  const { api, el, money, unitPrice, ago, when, productHref, showProblem, setStatus } = PF;

  async function freshnessWindow() {
    try {
      return (await api("/v1/sites")).freshness_seconds;
    } catch {
      return null; // the offers still show their age
    }
  }

  function cheapestPerUnit(offers) {
    const best = new Map();
    for (const offer of offers) {
      if (offer.unit_price === null || offer.unit_price === undefined) continue;
      const value = Number(offer.unit_price);
      if (!best.has(offer.unit) || value < best.get(offer.unit)) best.set(offer.unit, value);
    }
    return best;
  }

  function row(offer, best, window) {
    const cheapest = offer.unit_price !== null && best.get(offer.unit) === Number(offer.unit_price);
    const unitCell = el("td", { "data-label": "Unit price" }, unitPrice(offer));
    if (cheapest) unitCell.append(" ", el("strong", { class: "badge best-badge" }, `cheapest per ${offer.unit || "unit"}`));
    const stale = window !== null && offer.age_seconds > window;
    const seenCell = el("td", { "data-label": "Last seen", title: when(offer.last_seen) }, ago(offer.age_seconds));
    if (stale) seenCell.append(" ", el("span", { class: "badge stale" }, "stale"));
    const priceCell = el("td", { "data-label": "Price" }, money(offer.price, offer.currency));
    if (offer.is_discounted) priceCell.append(" ", el("span", { class: "badge" }, "discount"));
    return el(
      "tr",
      { class: cheapest ? "best" : null, "data-site": offer.site_id, "data-id": offer.id, "data-cheapest": cheapest ? "1" : "0" },
      el("td", { "data-label": "Shop" }, offer.site_id),
      el("td", { "data-label": "Product" }, el("a", { href: productHref(offer.site_id, offer.id) }, offer.name || offer.id)),
      priceCell,
      unitCell,
      el("td", { "data-label": "Availability" }, offer.availability || "—"),
      seenCell,
    );
  }

  async function main() {
    const query = PF.params();
    const wanted = new URLSearchParams();
    for (const name of ["gtin", "group", "q"]) {
      if (query.get(name)) {
        wanted.set(name, query.get(name));
        break; // the API takes exactly one
      }
    }
    if ([...wanted].length === 0) {
      setStatus("compare-status", "Give words or a GTIN above, or open a product and follow “Compare all offers”.");
      return;
    }
    setStatus("compare-status", "Loading…");
    try {
      const [answer, window] = await Promise.all([api(`/v1/compare?${wanted}`), freshnessWindow()]);
      const best = cheapestPerUnit(answer.items);
      const table = document.getElementById("offers");
      table.querySelector("tbody").replaceChildren(...answer.items.map((offer) => row(offer, best, window)));
      table.hidden = answer.items.length === 0;
      const shops = new Set(answer.items.map((o) => o.site_id)).size;
      setStatus(
        "compare-status",
        answer.items.length ? `${answer.items.length} offers from ${shops} shop${shops === 1 ? "" : "s"}.` : "No offers found.",
      );
    } catch (error) {
      setStatus("compare-status", "");
      showProblem(error);
    }
  }

  document.addEventListener("DOMContentLoaded", main);
})();
