// perfkit RUM: Core Web Vitals of real page views, sent to perfkit's collector (POST <prefix>/rum).
//
// It measures nothing itself: it takes the web-vitals library's attribution build, which the app
// installs from npm (`npm install web-vitals`) and serves or bundles (perfkit does not ship it):
//
//   <script type="module">
//     import * as webVitals from "/static/web-vitals/dist/web-vitals.attribution.js";
//     import { start } from "/perf/rum.js";
//     start(webVitals);
//   </script>
//
// Metrics are queued and sent with navigator.sendBeacon when the page is hidden (visibilitychange),
// as text/plain JSON: a "simple" request, so there is no CORS preflight. See docs/rum.md.
const MAX_METRICS = 40; // the collector's limit per beacon
const SERVER_TIMING = "total"; // perfkit's Server-Timing entry: the server's time to the response headers

function collectorURL() {
  // this file is <prefix>/rum.js or <prefix>/assets/perfkit-rum.<hash>.js; the collector is <prefix>/rum
  const path = new URL(import.meta.url).pathname.replace(/\/(assets\/[^/]+|rum\.js)$/, "");
  return path + "/rum";
}

function deviceClass() {
  const hint = navigator.userAgentData && navigator.userAgentData.mobile;
  if (typeof hint === "boolean") return hint ? "mobile" : "desktop";
  return /Mobi|Android/i.test(navigator.userAgent) ? "mobile" : "desktop";
}

function targetOf(metric) {
  const a = metric.attribution || {};
  if (metric.name === "LCP") return a.target || a.element; // web-vitals 5+: target; 4: element
  if (metric.name === "INP") return a.interactionTarget;
  if (metric.name === "CLS") return a.largestShiftTarget;
  return undefined;
}

function serverTime(metric) {
  const a = metric.attribution || {};
  const entry = a.navigationEntry || performance.getEntriesByType("navigation")[0];
  const found = entry && (entry.serverTiming || []).find((t) => t.name === SERVER_TIMING);
  return found ? found.duration : undefined;
}

export function start(webVitals, options = {}) {
  const endpoint = options.endpoint || collectorURL();
  if (options.sample !== undefined && Math.random() >= options.sample) return null;
  const device = options.device || deviceClass();
  let queue = [];
  let scheduled = false;

  function add(metric) {
    const item = { name: metric.name, id: metric.id, value: metric.value, delta: metric.delta };
    const target = targetOf(metric);
    if (target) item.target = String(target).slice(0, 500);
    if (metric.name === "TTFB") {
      const server = serverTime(metric);
      if (server !== undefined) item.server = server;
    }
    queue.push(item);
    // reported while hidden (web-vitals reports CLS and INP from its own visibilitychange listener,
    // which may run after ours): sent right after the listener that reported it
    if (document.visibilityState === "hidden" && !scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
  }

  function send(body) {
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    fetch(endpoint, { method: "POST", body, keepalive: true, headers: { "content-type": "text/plain" } })
      .catch(() => {});
  }

  function flush() {
    scheduled = false;
    const path = location.pathname; // the path only: query strings may carry personal data
    while (queue.length) {
      const batch = queue.slice(0, MAX_METRICS);
      queue = queue.slice(MAX_METRICS);
      send(JSON.stringify({ url: path, device, metrics: batch }));
    }
  }

  for (const name of ["onLCP", "onINP", "onCLS", "onFCP", "onTTFB"]) {
    if (typeof webVitals[name] !== "function") throw new Error("perfkit rum: web-vitals has no " + name);
    webVitals[name](add, options.reportAllChanges ? { reportAllChanges: true } : undefined);
  }
  addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flush();
  }, { capture: true });
  addEventListener("pagehide", flush, { capture: true }); // Safari without visibilitychange on unload
  return { flush, pending: () => queue.length };
}

export default start;
