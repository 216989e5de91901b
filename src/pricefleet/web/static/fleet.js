/* Fleet page, refreshed every few seconds (`?every=N` seconds, 1–60).
 *
 * Sources, all real: /v1/sites (read scope; shops, products, freshness, newest sighting; cached
 * by the API up to its sites TTL) and /v1/queues (crawl scope; live queue figures, recent dead
 * jobs, workers when the API can count them). Without a crawl key the queue columns come from
 * /v1/sites and the page says they may be that old. The rate is derived here: jobs finished
 * between two updates over the time between them. Crawls started from this page are followed
 * through /v1/crawls/{id}. Rows are updated in place so keyboard focus stays on its button. */
"use strict";

(() => {
  const { api, postJson, el, ago, duration, secondsSince, when, showProblem, setStatus } = PF;
  const CRAWLS = "pricefleet.crawls";
  const every = Math.min(60, Math.max(1, Number(PF.params().get("every")) || 3)) * 1000;
  const rows = new Map(); // site id -> { row, cells, pause }
  const previous = new Map(); // site id -> { done, at } for the rate
  let crawls = loadCrawls();
  let paused = false;
  let timer = null;

  function loadCrawls() {
    try {
      return JSON.parse(sessionStorage.getItem(CRAWLS) || "[]");
    } catch {
      return [];
    }
  }

  function saveCrawls() {
    try {
      sessionStorage.setItem(CRAWLS, JSON.stringify(crawls.slice(-20)));
    } catch {
      /* not kept across reloads, still shown */
    }
  }

  async function act(action) {
    try {
      showProblem(null);
      await action();
    } catch (error) {
      showProblem(error);
    }
    await tick();
  }

  function rowFor(site) {
    let entry = rows.get(site.id);
    if (entry) return entry;
    const fields = ["depth", "leased", "oldest", "rate", "totals", "hold", "last_seen", "freshness"];
    const labels = ["Queue depth", "In flight", "Oldest job", "Rate", "Done / failed / dead", "Hold", "Last seen", "Freshness"];
    const cells = Object.fromEntries(fields.map((f, i) => [f, el("td", { "data-field": f, "data-label": labels[i] }, "—")]));
    const crawl = el("button", { type: "button", "aria-label": `Crawl ${site.id} now` }, "Crawl");
    const pause = el("button", { type: "button" }, "Pause");
    crawl.addEventListener("click", () =>
      act(async () => {
        const started = await postJson("/v1/crawls", { site_id: site.id });
        crawls.push({ id: started.id, site: site.id, answer: started });
        saveCrawls();
      }),
    );
    pause.addEventListener("click", () =>
      act(() => postJson(`/v1/queues/${encodeURIComponent(site.id)}/${pause.dataset.next}`, {})),
    );
    const name = el("th", { scope: "row", "data-label": "Site" }, site.name, el("br"), el("small", {}, site.id));
    const row = el("tr", { "data-site": site.id }, name, ...fields.map((f) => cells[f]), el("td", { class: "actions", "data-label": "Actions" }, crawl, " ", pause));
    document.querySelector("#fleet tbody").append(row);
    entry = { row, cells, pause };
    rows.set(site.id, entry);
    return entry;
  }

  function rate(siteId, queue, live, now) {
    if (!live || !queue) return "—";
    const done = queue.acked_total + queue.failed_total;
    const before = previous.get(siteId);
    previous.set(siteId, { done, at: now });
    if (!before || now <= before.at) return "—";
    return `${((done - before.done) / ((now - before.at) / 1000)).toFixed(1)} jobs/s`;
  }

  function fill(site, queue, live, now) {
    const { cells, pause } = rowFor(site);
    cells.freshness.textContent =
      site.fresh_ratio === null ? "no products" : `${Math.round(site.fresh_ratio * 100)} % fresh (${site.stale_products} of ${site.products} stale)`;
    cells.last_seen.textContent = site.last_seen ? ago(secondsSince(site.last_seen)) : "never";
    cells.last_seen.title = when(site.last_seen);
    cells.rate.textContent = rate(site.id, queue, live, now);
    if (!queue) {
      for (const f of ["depth", "leased", "oldest", "totals", "hold"]) cells[f].textContent = "—";
      cells.depth.dataset.value = "";
      pause.hidden = true;
      return;
    }
    cells.depth.textContent = `${queue.depth} (${queue.queued} ready, ${queue.delayed} waiting)`;
    cells.depth.dataset.value = String(queue.depth);
    cells.leased.textContent = String(queue.leased);
    cells.oldest.textContent = queue.oldest_age_seconds > 0 ? duration(queue.oldest_age_seconds) : "—";
    cells.totals.textContent = `${queue.acked_total} / ${queue.failed_total} / ${queue.dead}`;
    cells.totals.dataset.done = String(queue.acked_total);
    cells.hold.textContent = queue.paused ? "paused" : queue.hold_seconds > 0 ? `held ${duration(queue.hold_seconds)}` : "none";
    pause.hidden = false;
    pause.dataset.next = queue.paused ? "resume" : "pause";
    pause.textContent = queue.paused ? "Resume" : "Pause";
    pause.setAttribute("aria-label", `${pause.textContent} ${site.id}`);
  }

  function showWorkers(queues, reason) {
    const node = document.getElementById("workers");
    if (queues && typeof queues.workers === "number") {
      node.textContent = `${queues.workers} worker process${queues.workers === 1 ? "" : "es"} alive.`;
      node.dataset.workers = String(queues.workers);
      return;
    }
    node.dataset.workers = "";
    node.textContent = queues
      ? "— This API cannot see the workers (they do not share its metrics folder, as `pricefleet run` arranges): in a cluster, sum active_workers in Prometheus."
      : `— ${reason}`;
  }

  function showErrors(queues, reason) {
    const list = document.getElementById("errors");
    if (!queues) {
      list.replaceChildren(el("li", {}, `— ${reason}`));
      return;
    }
    const items = queues.recent_dead.map((job) =>
      el("li", {}, el("strong", {}, job.site_id), ` ${job.url} — ${job.error} (after ${job.attempts} attempt${job.attempts === 1 ? "" : "s"})`),
    );
    list.replaceChildren(...(items.length ? items : [el("li", {}, "No dead jobs.")]));
  }

  async function followCrawls() {
    const list = document.getElementById("crawls");
    await Promise.all(
      crawls.map(async (crawl) => {
        if (crawl.answer && crawl.answer.status === "done" && crawl.final) return;
        try {
          crawl.answer = await api(`/v1/crawls/${encodeURIComponent(crawl.id)}`);
          crawl.final = crawl.answer.status === "done";
        } catch (error) {
          crawl.error = error.message;
        }
      }),
    );
    saveCrawls();
    list.replaceChildren(
      ...crawls.map((crawl) => {
        const a = crawl.answer;
        const text = crawl.error
          ? `${crawl.id}: ${crawl.error}`
          : `${crawl.id}: ${a.status} — ${a.jobs_done} done, ${a.jobs_dead} dead, ${a.jobs_pending} pending of ${a.jobs_enqueued} jobs`;
        return el("li", { "data-crawl": crawl.id, "data-status": a ? a.status : "" }, text);
      }),
    );
    if (crawls.length === 0) list.replaceChildren(el("li", {}, "None yet: use a site's “Crawl” button."));
  }

  async function tick() {
    const [sites, queues] = await Promise.allSettled([api("/v1/sites"), api("/v1/queues")]);
    const now = Date.now();
    if (sites.status === "rejected") {
      showProblem(sites.reason);
      setStatus("fleet-updated", `Update failed at ${new Date().toLocaleTimeString()}.`);
      return;
    }
    const live = queues.status === "fulfilled" ? queues.value : null;
    let reason = "";
    if (!live) {
      const status = queues.reason.status;
      reason =
        status === 401 || status === 403
          ? "needs a key with the crawl scope (“API key” at the top)."
          : `the queue figures could not be read: ${queues.reason.message}`;
    }
    const liveQueues = new Map((live ? live.items : []).map((q) => [q.site_id, q]));
    for (const site of sites.value.items) fill(site, live ? liveQueues.get(site.id) : site.queue, Boolean(live), now);
    showWorkers(live, reason);
    showErrors(live, reason);
    setStatus(
      "fleet-source",
      live
        ? "Queue figures are live (/v1/queues); products and freshness may lag by the API's sites cache (about a minute)."
        : `Queue figures come from /v1/sites and may be up to about a minute old; live figures, workers and errors: ${reason}`,
    );
    await followCrawls();
    setStatus("fleet-updated", `Updated ${new Date().toLocaleTimeString()}; every ${every / 1000} s.`);
  }

  async function loop() {
    if (!paused) {
      try {
        await tick();
      } catch (error) {
        showProblem(error);
      }
    }
    timer = window.setTimeout(loop, every);
  }

  function main() {
    const toggle = document.getElementById("fleet-pause-updates");
    toggle.addEventListener("click", () => {
      paused = !paused;
      toggle.setAttribute("aria-pressed", String(paused));
      toggle.textContent = paused ? "Resume updates" : "Pause updates";
    });
    loop();
  }

  document.addEventListener("DOMContentLoaded", main);
  window.addEventListener("pagehide", () => window.clearTimeout(timer));
})();
