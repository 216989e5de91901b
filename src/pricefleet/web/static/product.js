/* Product page: facts, the price history of this product and of the same product in other
 * shops (match group, else GTIN) drawn with uPlot as steps (a price holds until the next
 * change), price or unit price, with a table and an aria-label as its text alternative.
 *
 * One point per stored price state: the chart's data-points attribute is how many states of
 * this product it plots, the same count as its /history answer (for the price measure). */
"use strict";

(() => {
  const { api, el, money, unitPrice, ago, secondsSince, when, productHref, apiProductPath, safeUrl, showProblem, setStatus } = PF;
  // Shops plotted at most (the compare page lists every offer).
  const MAX_SERIES = 6;
  // Distinguishable on white, each at least 4.5:1 contrast.
  const COLORS = ["#1f4e9c", "#b3261e", "#1b6e3a", "#7a3fa0", "#8a5a00", "#00616e"];

  function fact(list, term, value) {
    list.append(el("dt", {}, term), el("dd", {}, value));
  }

  function renderFacts(product) {
    document.getElementById("product-name").textContent = product.name || product.id;
    document.title = `${product.name || product.id} · pricefleet`;
    const facts = document.getElementById("facts");
    fact(facts, "Shop", product.site_id);
    if (product.brand) fact(facts, "Brand", product.brand);
    fact(facts, "Price", money(product.price, product.currency));
    fact(facts, "Unit price", unitPrice(product));
    if (product.is_discounted) fact(facts, "Regular price", money(product.regular_price, product.currency));
    fact(facts, "Availability", product.availability || "—");
    if (product.size_value) fact(facts, "Size", `${Number(product.size_value)} ${product.size_unit || ""}`.trim());
    if (product.gtin) fact(facts, "GTIN", product.gtin);
    fact(facts, "Last seen", `${when(product.last_seen)} (${ago(secondsSince(product.last_seen))})`);
    const url = safeUrl(product.url);
    if (url) fact(facts, "At the shop", el("a", { href: url, rel: "noopener noreferrer" }, "open the shop's page"));
  }

  async function offersOf(product) {
    let query = null;
    if (product.group_id) query = new URLSearchParams({ group: product.group_id });
    else if (product.gtin) query = new URLSearchParams({ gtin: product.gtin });
    if (!query) return { query: null, offers: [] };
    const answer = await api(`/v1/compare?${query}`);
    const others = answer.items.filter((o) => !(o.site_id === product.site_id && o.id === product.id));
    return { query, offers: others };
  }

  function renderOffers(query, offers) {
    const section = document.getElementById("offers-status");
    if (!query) {
      section.textContent = "Not matched with products of other shops (no GTIN or match group).";
      return;
    }
    const link = document.getElementById("compare-link");
    link.href = `/compare?${query}`;
    link.hidden = false;
    if (offers.length === 0) {
      section.textContent = "No other shop sells it, as far as we know.";
      return;
    }
    section.textContent = `${offers.length} other offer${offers.length === 1 ? "" : "s"}:`;
    const list = el("ul", { class: "plain", id: "other-offers" });
    for (const offer of offers) {
      list.append(
        el(
          "li",
          {},
          el("a", { href: productHref(offer.site_id, offer.id) }, `${offer.site_id}: ${offer.name || offer.id}`),
          ` — ${money(offer.price, offer.currency)}, ${unitPrice(offer)}, seen ${ago(offer.age_seconds)}`,
        ),
      );
    }
    section.after(list);
  }

  function renderTable(rows) {
    const body = document.querySelector("#history-table tbody");
    body.replaceChildren(
      ...rows.map((row) =>
        el(
          "tr",
          {},
          el("td", { "data-label": "From" }, when(row.observed_at)),
          el("td", { "data-label": "Price" }, money(row.price, row.currency)),
          el("td", { "data-label": "Unit price" }, unitPrice(row)),
          el("td", { "data-label": "Discounted" }, row.is_discounted ? "yes" : "no"),
          el("td", { "data-label": "Availability" }, row.availability),
          el("td", { "data-label": "Last confirmed" }, when(row.last_seen)),
        ),
      ),
    );
  }

  /* uPlot's aligned data: the union of every series' times, null where a series has no
   * value (spanGaps joins them; the stepped path keeps each price until the next). Each
   * series ends with its last price carried to when it was last confirmed (`last_seen`),
   * drawn as line only: markers (`states`) sit on the stored price states alone. */
  function chartData(histories, measure) {
    const at = (iso) => Date.parse(iso) / 1000;
    const value = (row) => (row[measure] === null || row[measure] === undefined ? null : Number(row[measure]));
    const times = new Set();
    for (const history of histories) {
      for (const row of history.rows) times.add(at(row.observed_at));
      const last = history.rows[history.rows.length - 1];
      if (last) times.add(Math.max(at(last.observed_at), at(last.last_seen)));
    }
    const xs = [...times].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const states = [];
    const series = histories.map((history) => {
      const ys = new Array(xs.length).fill(null);
      const marks = [];
      for (const row of history.rows) {
        const i = index.get(at(row.observed_at));
        ys[i] = value(row);
        if (ys[i] !== null) marks.push(i);
      }
      const last = history.rows[history.rows.length - 1];
      if (last && at(last.last_seen) > at(last.observed_at)) ys[index.get(at(last.last_seen))] = value(last);
      states.push(marks);
      return ys;
    });
    return { data: [xs, ...series], states };
  }

  function summary(histories, measure) {
    const main = histories[0];
    const name = measure === "price" ? "Price" : "Unit price";
    const values = main.rows.map((row) => row[measure]).filter((v) => v !== null && v !== undefined).map(Number);
    if (values.length === 0) return `${name} history: no ${measure === "price" ? "prices" : "unit prices"} stored.`;
    const currency = main.rows[0].currency;
    const low = money(Math.min(...values), currency);
    const high = money(Math.max(...values), currency);
    const first = when(main.rows[0].observed_at);
    const last = when(main.rows[main.rows.length - 1].observed_at);
    const others = histories.length - 1;
    return (
      `${name} history of ${main.label}: ${values.length} price state${values.length === 1 ? "" : "s"} ` +
      `from ${first} to ${last}, lowest ${low}, highest ${high}` +
      (others ? `; ${others} other shop${others === 1 ? "" : "s"} plotted too.` : ".")
    );
  }

  function draw(container, histories, measure, previous) {
    if (previous) previous.destroy();
    const { data, states } = chartData(histories, measure);
    const own = histories[0];
    container.dataset.points = String(states[0].length);
    container.dataset.series = String(histories.length);
    container.dataset.measure = measure;
    container.setAttribute("aria-label", summary(histories, measure));
    const currency = own.rows[0]?.currency || "EUR";
    const format = (u, v) => (v === null || v === undefined ? "—" : money(v, currency));
    const options = {
      width: Math.max(280, container.clientWidth),
      height: 300,
      scales: { x: { time: true } },
      axes: [{}, { values: (u, ticks) => ticks.map((t) => money(t, currency)), size: 70 }],
      series: [
        {},
        ...histories.map((history, i) => ({
          label: history.label,
          stroke: COLORS[i % COLORS.length],
          width: i === 0 ? 3 : 2,
          spanGaps: true,
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: true, size: i === 0 ? 8 : 6, filter: () => states[i] },
          value: format,
        })),
      ],
    };
    const chart = new uPlot(options, data, container);
    container.dataset.drawn = "1";
    return chart;
  }

  async function main() {
    const holder = document.getElementById("product");
    const site = holder.dataset.site;
    const id = holder.dataset.id;
    if (!site || !id) {
      showProblem(new Error("no product given: open one from the search page"));
      setStatus("chart-status", "");
      return;
    }
    let product;
    try {
      product = await api(apiProductPath(site, id));
    } catch (error) {
      showProblem(error);
      setStatus("chart-status", "");
      return;
    }
    renderFacts(product);
    let offers = { query: null, offers: [] };
    try {
      offers = await offersOf(product);
    } catch (error) {
      showProblem(error); // the chart still shows this product
    }
    renderOffers(offers.query, offers.offers);
    const plotted = [product, ...offers.offers.slice(0, MAX_SERIES - 1)];
    let histories;
    try {
      histories = await Promise.all(
        plotted.map(async (item) => ({
          label: item === product ? `${item.site_id} (this product)` : item.site_id,
          rows: (await api(`${apiProductPath(item.site_id, item.id)}/history`)).items,
        })),
      );
    } catch (error) {
      showProblem(error);
      setStatus("chart-status", "The price history could not be read.");
      return;
    }
    renderTable(histories[0].rows);
    if (histories[0].rows.length === 0) {
      setStatus("chart-status", "No price stored yet.");
      return;
    }
    const container = document.getElementById("chart");
    let measure = "price";
    let chart = draw(container, histories, measure, null);
    const describe = () => {
      const extra = plotted.length > 1 ? ` and ${plotted.length - 1} other shop${plotted.length === 2 ? "" : "s"}` : "";
      setStatus("chart-status", `${container.dataset.points} ${measure === "price" ? "price" : "unit price"} states of this product plotted${extra}.`);
    };
    describe();
    for (const radio of document.querySelectorAll('input[name="measure"]')) {
      radio.addEventListener("change", () => {
        measure = radio.value;
        chart = draw(container, histories, measure, chart);
        describe();
      });
    }
    let width = container.clientWidth;
    window.addEventListener("resize", () => {
      if (container.clientWidth !== width) {
        width = container.clientWidth;
        chart.setSize({ width: Math.max(280, width), height: 300 });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", main);
})();
