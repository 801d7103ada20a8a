/* perfkit-realtime.js: the browser client of perfkit.realtime (docs/realtime.md, wire protocol v1).
 * Zero dependencies. As a classic script it sets `PerfkitRealtime` on the global object; served as
 * perfkit-realtime.mjs the same code is an ES module exporting it.
 *
 *   const rt = new PerfkitRealtime({ url: "/ws", sse: "/events", channels: ["user:7"] });
 *   rt.on("message", (m) => ...);          // {channel, epoch, offset, data}
 *   rt.on("resync", (r) => reload(r.channel));
 *   rt.subscribe("job:42", (data) => ...); rt.publish("chat:1", {text: "hi"});
 *
 * WebSocket first; SSE (fetch streaming) when the server answers but the WebSocket handshake fails.
 * Reconnects with exponential backoff and full jitter and resumes every channel from its last offset;
 * answers heartbeats and measures the round trip; stops for good on 4400/4401/4403 (HTTP 400/401/403).
 */
const PerfkitRealtime = (() => {
  "use strict";
  const FINAL = [4400, 4401, 4403]; // close codes (SSE: HTTP 400/401/403 + 4000) a retry cannot fix
  const now = () => performance.now();

  class Realtime {
    constructor(options = {}) {
      this.options = {
        url: "/ws", sse: null, channels: [], params: {}, backoff: [250, 15000], retries: 10,
        timeout: 10000, credentials: "same-origin", ...options,
      };
      this.positions = { ...(options.positions || {}) }; // channel -> {epoch, offset}: the last received
      this.wanted = new Map(); // channel -> Set of handlers
      this.latest = new Set();
      this.listeners = {};
      this.pending = new Map(); // request id -> [resolve, reject, timer]
      this.ids = 0;
      this.attempt = 0;
      this.refusals = new Map(); // channel -> `unavailable` refusals in a row
      this.connects = 0; // connections that reached `welcome`
      this.frames = 0; // frames received
      this.rtt = null; // ms, the last round trip measured (by our ping or the server's)
      this.state = "idle";
      this.transport = this.options.url ? "ws" : "sse";
      this.proven = null; // the transport that once worked: never abandoned for the other
      for (const c of this.options.channels) this.wanted.set(c, new Set());
      if (this.options.connect !== false) this.connect();
    }

    on(event, fn) {
      (this.listeners[event] ||= []).push(fn);
      return () => { this.listeners[event] = this.listeners[event].filter((f) => f !== fn); };
    }

    emit(event, value) {
      for (const fn of this.listeners[event] || []) {
        try { fn(value, this); } catch (err) { console.error("perfkit-realtime:", event, "handler failed", err); }
      }
    }

    setState(state, info) {
      this.state = state;
      this.emit("state", { state, ...info });
    }

    connect() {
      if (this.state === "closed" || this.socket || this.stream) return;
      clearTimeout(this.retryTimer);
      if (this.transport === "sse" && !this.wanted.size) return this.setState("idle"); // a stream needs a channel
      this.setState("connecting", { transport: this.transport });
      this.welcomed = false;
      this.transport === "ws" ? this.openSocket() : this.openStream();
      this.openTimer = setTimeout(() => this.lost(1006, "no welcome"), this.options.timeout);
    }

    url(base, scheme) {
      const u = new URL(base, location.href);
      if (scheme === "ws") u.protocol = u.protocol.replace("http", "ws");
      for (const [k, v] of Object.entries(this.options.params)) u.searchParams.set(k, v);
      const pairs = [];
      this.asked = new Set(this.wanted.keys()); // subscribed by the connect URL
      for (const c of this.asked) {
        u.searchParams.append("channel", c);
        const p = this.positions[c];
        if (p) pairs.push(`${encodeURIComponent(c)}=${p.epoch}.${p.offset}`);
      }
      if (pairs.length) u.searchParams.set("resume", pairs.join("&"));
      return u;
    }

    openSocket() {
      const ws = (this.socket = new WebSocket(this.url(this.options.url, "ws")));
      ws.onmessage = (e) => this.socket === ws && this.receive(e.data);
      ws.onclose = (e) => this.socket === ws && this.lost(e.code, e.reason);
    }

    async openStream() {
      const abort = (this.stream = new AbortController());
      let code = 1006;
      try {
        const r = await fetch(this.url(this.options.sse, "http"), {
          signal: abort.signal, cache: "no-store", credentials: this.options.credentials,
          headers: { accept: "text/event-stream" },
        });
        if (!r.ok || !r.body) {
          code = [400, 401, 403].includes(r.status) ? 4000 + r.status : 1006;
          throw new Error(`HTTP ${r.status}`);
        }
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let rest = "", data = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done || this.stream !== abort) break;
          const lines = (rest + value).split("\n");
          rest = lines.pop();
          for (let line of lines) {
            if (line.endsWith("\r")) line = line.slice(0, -1); // CRLF line ends are SSE too
            if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
            else if (line === "" && data.length) this.receive(data.join("\n")), (data = []);
            else if (line.startsWith(":")) this.heard(); // `: ping <t>`
          }
        }
      } catch (err) {
        if (this.stream !== abort) return; // we closed it ourselves
      }
      if (this.stream === abort) this.lost(code, "stream ended");
    }

    send(frame) {
      if (this.transport !== "ws" || !this.socket || this.socket.readyState !== 1) return false;
      this.socket.send(JSON.stringify(frame));
      return true;
    }

    heard() {
      this.lastHeard = now();
    }

    receive(text) {
      this.heard();
      let f;
      try { f = JSON.parse(text); } catch { return; }
      this.frames++;
      if (f.type === "welcome") this.welcome(f);
      else if (f.type === "message") this.message(f);
      else if (f.type === "batch") for (const m of f.messages || []) this.message(m);
      else if (f.type === "subscribed") {
        this.positions[f.channel] = { epoch: f.epoch, offset: f.offset };
        this.refusals.delete(f.channel);
        f.latest ? this.latest.add(f.channel) : this.latest.delete(f.channel);
        this.emit("subscribed", f);
      } else if (f.type === "resync") {
        this.positions[f.channel] = { epoch: f.epoch, offset: f.offset };
        this.emit("resync", { channel: f.channel, epoch: f.epoch, offset: f.offset, reason: f.reason });
      } else if (f.type === "ping") {
        this.send({ type: "pong", t: f.t });
        if (f.rtt != null) this.measured(f.rtt);
      } else if (f.type === "pong" && typeof f.t === "number") this.measured(now() - f.t); else if (f.type === "error") this.refused(f);
      this.answer(f);
    }

    measured(ms) {
      this.rtt = ms;
      this.emit("rtt", ms);
    }

    welcome(f) {
      clearTimeout(this.openTimer);
      this.welcomed = true;
      this.proven = this.transport;
      this.attempt = 0;
      this.connects++;
      this.info = f;
      const beat = (this.options.heartbeat || f.heartbeat * 1000) || 15000;
      const dead = this.options.deadAfter || 2 * f.heartbeat * 1000 + 5000;
      // the server pings every heartbeat and reports the round trip it measured; the client pings once
      // now (a first rtt) and then only when the server has been quiet for a beat (is it still there?)
      this.beatTimer = setInterval(() => {
        const quiet = now() - this.lastHeard;
        if (quiet > dead) return this.lost(4000, "heartbeat timeout");
        if (quiet > beat) this.send({ type: "ping", t: now() });
      }, Math.min(beat, dead) / 2);
      this.send({ type: "ping", t: now() });
      for (const c of this.wanted.keys()) {
        if (!this.asked.has(c)) this.resubscribe(c).catch(() => null); // added while connecting
      }
      this.setState("open", { transport: this.transport, conn: f.conn });
      this.emit("open", f);
    }

    message(m) {
      const seen = this.positions[m.channel];
      if (!this.wanted.has(m.channel)) return;
      if (seen && seen.epoch === m.epoch && m.offset <= seen.offset) return; // a resume that overlapped
      this.positions[m.channel] = { epoch: m.epoch, offset: m.offset };
      const event = { channel: m.channel, epoch: m.epoch, offset: m.offset, data: m.data };
      for (const fn of this.wanted.get(m.channel)) {
        try { fn(m.data, event); } catch (err) { console.error("perfkit-realtime: handler failed", err); }
      }
      this.emit("message", event);
    }

    refused(f) {
      if (f.channel && f.id == null && ["forbidden", "too_many_channels"].includes(f.code)) {
        this.wanted.delete(f.channel); // asked for at connect: do not ask again on every reconnect
      }
      if (f.code === "unavailable" && f.channel && f.id == null && this.wanted.has(f.channel)) this.again(f.channel);
      this.emit("error", f);
    }

    again(channel) { // the broker is down: ask again after a backoff with jitter, `retries` times in a row
      const n = this.refusals.get(channel) || 0;
      if (n >= this.options.retries) return this.wanted.delete(channel), this.refusals.delete(channel);
      this.refusals.set(channel, n + 1);
      setTimeout(() => this.wanted.has(channel) && this.resubscribe(channel)
        .catch((e) => e.frame && e.code === "unavailable" && this.again(channel)), this.backoff(n));
    }

    answer(f) {
      const waiting = f.id != null && this.pending.get(f.id);
      if (!waiting) return;
      this.pending.delete(f.id);
      clearTimeout(waiting[2]);
      if (f.type === "error") waiting[1](Object.assign(new Error(`${f.code}: ${f.message}`), { code: f.code, frame: f }));
      else waiting[0](f);
    }

    request(type, fields) {
      return new Promise((resolve, reject) => {
        const id = ++this.ids;
        if (!this.welcomed || !this.send({ type, id, ...fields })) {
          const why = this.transport === "sse" ? "needs the WebSocket transport" : "not connected";
          return reject(Object.assign(new Error(`${type}: ${why}`), { code: "unavailable" }));
        }
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(Object.assign(new Error(`${type}: no answer`), { code: "timeout" }));
        }, this.options.timeout);
        this.pending.set(id, [resolve, reject, timer]);
      });
    }

    resubscribe(channel) {
      const p = this.positions[channel];
      return this.request("subscribe", { channel, ...(p ? { epoch: p.epoch, offset: p.offset } : {}) });
    }

    subscribe(channel, handler) {
      const known = this.wanted.has(channel);
      if (!known) this.wanted.set(channel, new Set());
      if (handler) this.wanted.get(channel).add(handler);
      if (known) return Promise.resolve(null);
      if (this.state === "closed") return Promise.reject(Object.assign(new Error("closed"), { code: "closed" }));
      if (this.transport === "sse" || !this.welcomed) {
        this.restartStream();
        return new Promise((resolve, reject) => {
          const off = [
            this.on("subscribed", (f) => f.channel === channel && (off.forEach((g) => g()), resolve(f))),
            this.on("error", (f) => f.channel === channel && (off.forEach((g) => g()), reject(Object.assign(new Error(f.code), { code: f.code, frame: f })))),
          ];
        });
      }
      return this.resubscribe(channel).catch((err) => {
        this.wanted.delete(channel);
        throw err;
      });
    }

    unsubscribe(channel) {
      if (!this.wanted.delete(channel)) return Promise.resolve(null);
      delete this.positions[channel];
      if (this.transport === "sse") return Promise.resolve(this.restartStream());
      return this.request("unsubscribe", { channel }).catch(() => null);
    }

    publish(channel, data) {
      return this.request("publish", { channel, data });
    }

    restartStream() {
      if (this.transport === "sse" && this.state !== "closed") {
        this.drop();
        this.attempt = 0;
        this.connect();
      }
    }

    drop() {
      clearTimeout(this.openTimer);
      clearInterval(this.beatTimer);
      const ws = this.socket, stream = this.stream;
      this.socket = this.stream = null;
      this.welcomed = false;
      if (ws) { ws.onclose = ws.onmessage = null; try { ws.close(1000); } catch {} }
      if (stream) stream.abort();
      for (const [, reject, timer] of this.pending.values()) {
        clearTimeout(timer);
        reject(Object.assign(new Error("connection lost"), { code: "unavailable" }));
      }
      this.pending.clear();
    }

    lost(code, reason) {
      const opened = this.welcomed, transport = this.transport;
      this.drop();
      if (this.state === "closed") return;
      this.emit("close", { code, reason, transport });
      if (FINAL.includes(code)) return this.stop(code, reason);
      if (opened || this.proven || transport === "sse") return this.retry();
      // A WebSocket that never worked: a browser cannot see why a handshake failed. If the server
      // answers plain HTTP, the handshake itself was refused (Origin) or blocked (a proxy): use SSE,
      // or stop if there is none. If it does not answer, it is down: try again later.
      fetch(new URL(this.options.url, location.href), { mode: "no-cors", cache: "no-store", credentials: "omit" }).then(
        () => {
          if (!this.options.sse) return this.stop(4403, "WebSocket handshake refused");
          this.transport = "sse";
          this.retry();
        },
        () => this.retry(),
      );
    }

    retry() {
      if (this.state === "closed") return;
      const delay = this.backoff(this.attempt++);
      this.setState("waiting", { delay });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    backoff(n) {
      const [first, longest] = this.options.backoff;
      return Math.random() * Math.min(longest, first * 2 ** Math.min(n, 30));
    }

    stop(code, reason) {
      this.setState("closed", { code, reason });
      this.emit("closed", { code, reason });
    }

    close() {
      clearTimeout(this.retryTimer);
      this.drop();
      if (this.state !== "closed") this.stop(1000, "closed by the client");
    }
  }
  globalThis.PerfkitRealtime = Realtime;
  return Realtime;
})();
