// perfkit dashboard: plain JavaScript, inline SVG charts, no framework and no chart library.
"use strict";
(function () {
  const PREFIX = document.body.dataset.prefix || "";
  const KEEP = 120; // live points per chart (two minutes at one per second)
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const state = { token: null, live: [], trend: [], slow: 0, nplusone: 0, jobCursors: [null], jobPage: 0, stream: null };

  // -- DOM helpers: text only through textContent, never innerHTML with data ------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
    return el;
  }
  const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  // a fix as applied to the query: Django's QuerySet methods as they are, SQLAlchemy's loader options in .options()
  const applied = (fix) =>
    fix.startsWith(".") || fix.startsWith("select_related(") || fix.startsWith("prefetch_related(")
      ? "." + fix.replace(/^\./, "") : `.options(${fix})`;
  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %");

  // -- API ------------------------------------------------------------------------------------------
  class Unauthorized extends Error {}
  async function api(path, options = {}) {
    const response = await fetch(PREFIX + path, {
      ...options,
      headers: { Authorization: "Bearer " + state.token, ...(options.headers || {}) },
    });
    if (response.status === 401) throw new Unauthorized("token refused");
    const body = await response.json();
    if (!response.ok && response.status !== 409) throw new Error(body.error || response.statusText);
    return body;
  }

  // -- charts: polylines in an SVG viewBox, y scaled to the visible maximum --------------------------
  function drawChart(id, series, opts = {}) {
    const fig = $(id);
    const svg = fig.querySelector("svg");
    const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
    const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    const max = Math.max(opts.min || 1e-9, ...values, 0) * 1.1;
    const n = Math.max(...series.map((s) => s.values.length), 2);
    const nodes = [svgNode("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }),
      svgNode("text", { x: 2, y: 9 }, (opts.format || fmt)(max / 1.1))];
    series.forEach((s, i) => {
      const points = [];
      s.values.forEach((v, j) => {
        if (v === null || v === undefined) return;
        const x = (j / (n - 1)) * width;
        const y = height - (v / max) * (height - 4) - 1;
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      nodes.push(svgNode("polyline", { class: "s" + i, points: points.join(" "), "data-series": s.name }));
    });
    svg.replaceChildren(...nodes);
    svg.dataset.points = String(values.length);
    const last = series.map((s) => s.name + " " + (opts.format || fmt)(s.values[s.values.length - 1])).join(" · ");
    fig.querySelector(".last").textContent = last;
  }
  function svgNode(tag, attrs, text) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function drawLive() {
    const col = (key) => state.live.map((p) => p[key]);
    drawChart("chart-throughput", [{ name: "req/s", values: col("throughput_rps") }]);
    drawChart("chart-latency", [
      { name: "p50", values: col("p50_ms") }, { name: "p95", values: col("p95_ms") }, { name: "p99", values: col("p99_ms") },
    ], { format: (v) => fmt(v, 0) + " ms" });
    drawChart("chart-errors", [{ name: "errors/s", values: col("errors_per_s") }]);
    drawChart("chart-cache", [{ name: "hit", values: col("cache_hit_ratio") }], { min: 1, format: pct });
    const queues = [...new Set(state.live.flatMap((p) => Object.keys(p.queue_depth || {})))].slice(0, 3);
    drawChart("chart-queues", queues.length ? queues.map((q) => ({ name: q, values: state.live.map((p) => (p.queue_depth || {})[q] ?? 0) }))
      : [{ name: "ready", values: state.live.map(() => 0) }], { format: (v) => fmt(v, 0) });
    drawChart("chart-realtime", [{ name: "conns", values: col("realtime_connections") },
      { name: "msg/s", values: col("realtime_out_per_s") }, { name: "lag p99", values: col("realtime_lag_p99_ms") }],
      { format: (v) => fmt(v, 0) });
    drawChart("chart-system", [{ name: "cpu", values: col("cpu_percent") }, { name: "mem", values: col("memory_percent") }],
      { min: 100, format: (v) => fmt(v, 0) + " %" });
  }

  // -- the live stream: SSE read through fetch, so the token travels in a header ----------------------
  async function stream() {
    const controller = new AbortController();
    state.stream = controller;
    try {
      const response = await fetch(PREFIX + "/live", { headers: { Authorization: "Bearer " + state.token }, signal: controller.signal });
      if (response.status === 401) return showLogin("The token was refused.");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      $("status").textContent = "live";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data) continue;
          state.live.push(JSON.parse(data));
          if (state.live.length > KEEP) state.live.shift();
          drawLive();
          $("status").textContent = "live · " + state.live[state.live.length - 1].processes + " process(es)";
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    $("status").textContent = "reconnecting…";
    setTimeout(stream, 2000);
  }

  // -- report: score, budgets, routes, recommendations ----------------------------------------------
  async function loadReport() {
    const report = await api("/report?window=" + encodeURIComponent($("window").value));
    const score = report.score;
    $("score-value").textContent = score === null ? "–" : String(score);
    $("score").className = "score " + (score === null ? "" : score >= 90 ? "good" : score >= 60 ? "fair" : "poor");
    $("budgets").replaceChildren(...report.budgets.map((b) => h("div", { class: "budget " + (b.ok === null ? "" : b.ok ? "ok" : "over") },
      b.kpi + " ", h("b", {}, b.value === null ? "–" : b.unit === "ratio" ? pct(b.value) : fmt(b.value) + " " + b.unit),
      " / " + (b.unit === "ratio" ? pct(b.budget) : b.budget + " " + b.unit))));
    $("recommendations").replaceChildren(...(report.recommendations.length ? report.recommendations.map((r) =>
      h("li", { class: "sev-" + r.severity }, r.message, " ", h("span", { class: "fix" }, r.fix))) : [h("li", {}, "Nothing to recommend: every measurement is within budget.")]));
    renderVitals(report.web_vitals || {});
    $("regressions").replaceChildren(...report.regressions.map((r) => h("p", { class: "sev-warning" }, r.message)));
    const rows = Object.entries(report.routes).sort((a, b) => b[1].requests - a[1].requests);
    $("routes").tBodies[0].replaceChildren(...rows.map(([route, r]) => h("tr", {},
      h("td", {}, route), h("td", {}, r.requests), h("td", {}, fmt(r.throughput_rps, 2)), h("td", {}, fmt(r.p50_ms)),
      h("td", { class: r.p95_ok === false ? "bad" : null }, fmt(r.p95_ms)), h("td", {}, fmt(r.p99_ms)),
      h("td", { class: r.error_rate_ok === false ? "bad" : null }, pct(r.error_rate)),
      h("td", {}, fmt(r.db_queries_per_request)), h("td", {}, fmt(r.db_ms_per_request)))));
  }

  // -- web vitals of real users: p75 per page route and device, coloured by its rating ------------------
  function renderVitals(wv) {
    const cell = (v) => (v ? h("td", { class: "rating-" + v.rating, title: `${v.rating}: ${pct(v.good)} good, ${pct(v.poor)} poor of ${v.views}` },
      v.unit ? fmt(v.p75, 0) + " ms" : fmt(v.p75, 3)) : h("td", {}, "–"));
    const targets = (route) => ["LCP", "INP", "CLS"].flatMap((m) => ((wv.targets || {})[m] || [])
      .filter((t) => t.route === route).slice(0, 1).map((t) => h("div", {}, m + " ", h("code", {}, t.target))));
    const ttfbCell = (p) => {
      const c = cell(p.vitals.TTFB);
      if (p.ttfb_server_p75_ms !== null && p.ttfb_server_p75_ms !== undefined) c.append(` (${fmt(p.ttfb_server_p75_ms, 0)} + ${fmt(p.ttfb_rest_p75_ms, 0)})`);
      return c;
    };
    const pages = wv.pages || [];
    $("vitals").tBodies[0].replaceChildren(...(pages.length ? pages.map((p) => h("tr", {},
      h("td", {}, p.route), h("td", {}, p.device), h("td", {}, p.views),
      ...["LCP", "INP", "CLS", "FCP"].map((m) => cell(p.vitals[m])),
      ttfbCell(p),
      h("td", {}, targets(p.route)))) : [h("tr", {}, h("td", { colspan: 9 }, "no beacons yet: include /perf/rum.js with web-vitals (docs/rum.md)"))]));
  }

  async function loadTrend() {
    const { points } = await api("/api/history?since=24h");
    drawChart("chart-trend", [
      { name: "p95 ms", values: points.map((p) => p.p95_ms) }, { name: "req/s", values: points.map((p) => p.throughput_rps) },
    ]);
  }

  // -- findings, grouped (one row per statement shape or relationship) and paginated -----------------
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
  const routeList = (routes) => Object.entries(routes || {}).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} (${n})`).join(", ") || "–";
  function slowGroup(g) {
    return h("details", { class: "group" },
      h("summary", {}, h("b", {}, `${g.count}× · ${fmt(g.total_ms)} ms total · p95 ${fmt(g.p95_ms)} ms `), h("code", {}, g.statement || g.shape || g.shape_id)),
      h("p", {}, "routes " + routeList(g.routes) + " · first " + when(g.first_seen) + " · last " + when(g.last_seen)),
      g.explain ? h("pre", { class: "explain" }, g.explain.join("\n")) : h("p", {}, "no EXPLAIN captured for this shape"));
  }
  function nplusoneGroup(g) {
    return h("details", { class: "group" },
      h("summary", {}, h("b", {}, `${g.count}× `), `N+1 on ${g.relationship}`),
      h("p", {}, "routes " + routeList(g.routes) + " · first " + when(g.first_seen) + " · last " + when(g.last_seen) + " · fix: ", h("code", {}, g.fix ? applied(g.fix) : "")));
  }
  async function loadFindings(kind, target, key) {
    const page = await api(`/api/findings?kind=${kind}&group=1&offset=${state[key]}&limit=${PAGE}`);
    const items = page.items.map(kind === "slow_query" ? slowGroup : nplusoneGroup);
    $(target).replaceChildren(...(items.length ? items : [h("p", {}, "none recorded")]));
    pager(target + "-pager", state[key], page.total, (offset) => { state[key] = offset; loadFindings(kind, target, key); });
  }
  function pager(id, offset, total, go) {
    const nav = $(id);
    nav.replaceChildren(
      h("button", { type: "button", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - PAGE)) }, "‹ previous"),
      h("span", {}, total ? `${offset + 1}–${Math.min(total, offset + PAGE)} of ${total}` : "0"),
      h("button", { type: "button", disabled: offset + PAGE >= total, onclick: () => go(offset + PAGE) }, "next ›"));
  }

  // -- jobs: cursor pagination, progress, retry and cancel -----------------------------------------
  async function loadJobs() {
    const status = $("job-status").value;
    const cursor = state.jobCursors[state.jobPage];
    let page;
    try {
      page = await api(`/api/jobs?limit=${PAGE}` + (status ? "&status=" + status : "") + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      $("jobs").tBodies[0].replaceChildren(h("tr", {}, h("td", { colspan: 8 }, err.message)));
      return;
    }
    state.jobCursors[state.jobPage + 1] = page.cursor;
    $("jobs").tBodies[0].replaceChildren(...page.items.map((j) => {
      const open = ["queued", "scheduled", "running"].includes(j.status);
      const done = ["failed", "dead", "cancelled"].includes(j.status);
      return h("tr", { "data-job": j.id },
        h("td", {}, h("code", {}, j.id)), h("td", {}, j.type), h("td", {}, j.queue), h("td", { class: "job-status" }, j.status),
        h("td", {}, h("progress", { max: 1, value: j.progress || 0 }), " ", j.progress_message || ""),
        h("td", {}, `${j.attempts}/${j.max_attempts}`), h("td", {}, j.error || ""),
        h("td", {}, open ? h("button", { type: "button", class: "cancel", onclick: () => act(`/api/jobs/${encodeURIComponent(j.id)}/cancel`) }, "Cancel") : null,
          done ? h("button", { type: "button", class: "retry", onclick: () => act(`/api/jobs/${encodeURIComponent(j.id)}/retry`) }, "Retry") : null));
    }));
    const nav = $("jobs-pager");
    nav.replaceChildren(
      h("button", { type: "button", disabled: state.jobPage === 0, onclick: () => { state.jobPage -= 1; loadJobs(); } }, "‹ newer"),
      h("span", {}, "page " + (state.jobPage + 1)),
      h("button", { type: "button", disabled: !page.cursor, onclick: () => { state.jobPage += 1; loadJobs(); } }, "older ›"));
  }
  async function act(path) {
    try {
      const result = await api(path, { method: "POST" });
      $("action-result").textContent = JSON.stringify(result);
    } catch (err) {
      $("action-result").textContent = err.message;
    }
    loadJobs().catch(() => {});
  }

  async function loadAlerts() {
    const alerts = await api("/api/alerts");
    const items = alerts.active.map((a) => h("li", { class: "sev-critical" }, `${a.rule}: ${a.status} (value ${fmt(a.value, 3)})`));
    $("alerts").replaceChildren(...(items.length ? items : [h("li", {}, alerts.rules.length ? "no active alerts" : "no alert rules configured")]));
  }

  // -- start-up -------------------------------------------------------------------------------------
  function showLogin(reason) {
    if (state.stream) state.stream.abort();
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-reason").textContent = reason;
    $("status").textContent = "locked";
  }
  async function refresh() {
    await Promise.all([loadReport(), loadJobs(), loadAlerts()]);
  }
  async function open() {
    try {
      await loadReport();
    } catch (err) {
      if (err instanceof Unauthorized) return showLogin("The token was refused.");
      throw err;
    }
    sessionStorage.setItem("perfkit-token", state.token);
    $("login").hidden = true;
    $("main").hidden = false;
    await Promise.all([loadTrend(), loadJobs(), loadAlerts(),
      loadFindings("slow_query", "slow", "slow"), loadFindings("n_plus_one", "nplusone", "nplusone")]);
    stream();
    setInterval(() => refresh().catch(() => {}), 5000);
    setInterval(() => loadTrend().catch(() => {}), 60000);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    open();
  });
  $("window").addEventListener("change", () => loadReport().catch(() => {}));
  $("job-status").addEventListener("change", () => { state.jobCursors = [null]; state.jobPage = 0; loadJobs(); });
  $("clear-cache").addEventListener("click", () => act("/api/cache/clear"));

  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname + location.search); // keep it out of history
  state.token = fromHash || sessionStorage.getItem("perfkit-token");
  if (state.token) open(); else showLogin("This dashboard needs the monitoring token.");
})();
