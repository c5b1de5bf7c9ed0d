// Lean chat load generator: the official socket.io-client on the websocket transport.
//
//   node bench/node/chat_load.mjs --plan plan.json
//
// The plan (written by bench/hotpath_bench.py, which also inserts the agents and mints the JWTs)
// lists the customers and agents, the URL each one connects to, and the schedule. The parent
// process forks one child per worker (`plan.workers`); a room's customer and the agents of its
// department always live in the same child, so one monotonic clock times both ends of a message.
//
// Output: ONE JSON line on stdout with chat_load.py's fields (so the orchestrators' tables work)
// plus error_acks by code, retry_after_ms, chats_assigned_per_s and a per-second timeline.
// Progress goes to stderr, including `CHAT_LOAD_WINDOW <start> <end>` (epoch seconds of the
// measured window) which the orchestrator uses to sample CPU.

import { fork } from "node:child_process";
import fs from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { io } from "socket.io-client";

const CUSTOMER_NS = "/customer";
const AGENT_NS = "/agent";

function log(...parts) {
  process.stderr.write(`[chat_load.mjs ${new Date().toISOString().slice(11, 19)}] ${parts.join(" ")}\n`);
}

function percentiles(values) {
  if (!values.length) return { p50: null, p95: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] * 100) / 100;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: Math.round(sorted[sorted.length - 1] * 100) / 100 };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs `fn` over `items` with at most `limit` in flight (connect and set-up storms stay bounded).
async function pool(items, limit, fn) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(lanes);
}

// ------------------------------------------------------------------ child: one worker

class Worker {
  constructor(plan, wid) {
    this.plan = plan;
    this.wid = wid;
    this.rooms = plan.rooms.filter((r) => r.worker === wid).map((spec) => ({ spec, sessionId: null, agent: null }));
    this.agents = plan.agents.filter((a) => a.worker === wid).map((spec) => ({ spec, sock: null }));
    this.sent = new Map(); // client_msg_id -> record
    this.errors = {}; // "event:code" -> count (chat_load.py's error_kinds)
    this.errorAcks = {}; // chat:message error codes -> count
    this.retryAfter = [];
    this.roomBySession = new Map();
    this.agentBySession = new Map(); // session id -> agent entry that got it (chat:assigned)
    this.dropped = new Set(); // sockets the server disconnected
    this.disconnectKinds = {};
    this.control = {};
    this.lastControl = performance.now();
    this.phase = "setup";
    this.unexpected = 0;
    this.echoes = 0;
    this.inflight = new Set(); // chat:message records waiting for their ack
    this.pad = "x".repeat(Math.max(0, plan.message_bytes - 40));
  }

  count(table, key, n = 1) {
    table[key] = (table[key] || 0) + n;
  }

  // -------------------------------------------------- sockets

  open(url, ns, token, department) {
    // one Engine.IO connection per socket (forceNew), websocket only: no long-polling upgrade
    return io(url + ns, {
      path: this.plan.path,
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 30000,
      // the department only matters to bench/bare_relay.py (the server reads just the token)
      auth: department ? { token, department } : { token },
    });
  }

  connect(url, ns, token, department) {
    const sock = this.open(url, ns, token, department);
    return new Promise((resolve) => {
      sock.once("connect", () => resolve(sock));
      sock.once("connect_error", (err) => {
        this.count(this.errors, `connect:${(err && err.message) || "error"}`.slice(0, 80));
        sock.close();
        resolve(null);
      });
    });
  }

  wire(sock, side) {
    sock.on("chat:message", (msg) => this.onMessage(msg, side));
    sock.on("disconnect", (reason) => {
      if (this.phase === "teardown") return;
      this.dropped.add(sock);
      this.count(this.disconnectKinds, `${this.phase}:${reason}`);
    });
    sock.onAny((event) => {
      // presence:updated, queue:updated, chat:session...: their end marks the end of set-up
      this.count(this.control, event);
      this.lastControl = performance.now();
    });
  }

  onMessage(msg, side) {
    const now = performance.now();
    const rec = msg && this.sent.get(msg.client_msg_id);
    if (!rec) return void this.unexpected++;
    if (rec.side === side) return void this.echoes++; // the sender must not hear itself
    rec.deliveries++;
    if (rec.deliveries === 1) rec.tDeliv = now;
  }

  // emit with ack; resolves {ok, data} or {ok:false, code, details}
  call(sock, event, payload, timeoutMs = this.plan.ack_timeout * 1000) {
    return new Promise((resolve) => {
      sock.timeout(timeoutMs).emit(event, payload, (err, resp) => {
        if (err) return resolve({ ok: false, code: "timeout" });
        if (resp && resp.ok) return resolve({ ok: true, data: resp.data });
        const error = (resp && resp.error) || {};
        resolve({ ok: false, code: error.code || "bad_ack", details: error.details || {} });
      });
    });
  }

  async callData(sock, event, payload, timeoutMs) {
    const resp = await this.call(sock, event, payload, timeoutMs);
    if (!resp.ok) this.count(this.errors, `${event}:${resp.code}`);
    return resp.ok ? resp.data : null;
  }

  // -------------------------------------------------- set-up

  async connectAll() {
    const t0 = Date.now();
    const connectMs = [];
    const jobs = [
      ...this.agents.map((a) => ({ entry: a, url: a.spec.url, ns: AGENT_NS, token: a.spec.token, department: a.spec.department, side: "agent" })),
      ...this.rooms.map((r) => ({ entry: r, url: r.spec.customer_url, ns: CUSTOMER_NS, token: r.spec.customer_token, side: "customer" })),
    ];
    await pool(jobs, this.plan.connect_concurrency, async (job) => {
      const t = performance.now();
      const sock = await this.connect(job.url, job.ns, job.token, job.department);
      if (!sock) return;
      connectMs.push(performance.now() - t);
      this.wire(sock, job.side);
      job.entry.sock = sock;
      job.entry.origin = job;
    });
    return { t_connect_start: t0 / 1000, t_connect_end: Date.now() / 1000, connected: connectMs.length, connect_ms: connectMs };
  }

  async assignAll() {
    const t0 = performance.now();
    for (const a of this.agents) {
      if (!a.sock) continue;
      a.sock.on("chat:assigned", (data) => {
        const id = data && data.session && data.session.id;
        if (id) this.agentBySession.set(id, a);
      });
    }
    await pool(this.agents.filter((a) => a.sock), 64, (a) => this.callData(a.sock, "agent:status", { status: "online" }));
    await pool(this.rooms.filter((r) => r.sock), 64, async (room) => {
      const data = await this.callData(room.sock, "chat:start", { department: room.spec.department });
      if (!data) return;
      room.sessionId = data.session.id;
      this.roomBySession.set(room.sessionId, room);
    });
    // assigned = the agent heard chat:assigned for the session (the customer hears it too)
    const started = this.rooms.filter((r) => r.sessionId);
    const deadline = performance.now() + this.plan.assign_timeout * 1000;
    while (performance.now() < deadline && started.some((r) => !this.agentBySession.has(r.sessionId))) await sleep(20);
    this.active = [];
    for (const room of started) {
      room.agent = this.agentBySession.get(room.sessionId) || null;
      if (room.agent) this.active.push(room);
      else this.count(this.errors, "unassigned");
    }
    return (performance.now() - t0) / 1000;
  }

  async settle() {
    const t0 = performance.now();
    const quiet = this.plan.settle * 1000;
    const limit = t0 + this.plan.settle_max * 1000;
    while (performance.now() < limit) {
      if (performance.now() - this.lastControl >= quiet) return (performance.now() - t0) / 1000;
      await sleep(100);
    }
    this.count(this.errors, "settle_timeout");
    return (performance.now() - t0) / 1000;
  }

  async setup() {
    const conn = await this.connectAll();
    const assignSeconds = this.plan.mode === "idle" ? 0 : await this.assignAll();
    const settleSeconds = this.plan.mode === "idle" ? 0 : await this.settle();
    return { ...conn, assign_seconds: assignSeconds, settle_seconds: settleSeconds, active: (this.active || []).length, control_events: this.control, errors: { ...this.errors } };
  }

  // -------------------------------------------------- messaging (open loop)

  // the schedule's phase at time t (ms since t0), with its start: [{seconds, rate, measured}]
  phaseAt(t) {
    let start = 0;
    for (const phase of this.plan.schedule) {
      if (t < start + phase.seconds * 1000) return { ...phase, start };
      start += phase.seconds * 1000;
    }
    return null;
  }

  // One chat:message. Its ack has no timer of its own (socket.io-client's timeout() arms one per
  // emit): sweepAcks() times out the late ones once a second, which keeps the generator lean.
  send(room, side, k, t0) {
    const sock = side === "customer" ? room.sock : room.agent.sock;
    const cmid = `${this.plan.run_id}-${room.spec.index}-${k}`;
    const tSend = performance.now();
    const phase = this.phaseAt(tSend - t0);
    const rec = { room, side, tSend, sec: Math.floor((tSend - t0) / 1000), measured: !!(phase && phase.measured), tAck: 0, id: null, code: null, deliveries: 0, tDeliv: 0 };
    this.sent.set(cmid, rec);
    this.inflight.add(rec);
    if (!sock.connected) {
      // the server dropped this socket: socket.io-client would buffer the emit forever
      this.inflight.delete(rec);
      this.ackError(rec, "disconnected");
      return;
    }
    const payload = { session_id: room.sessionId, client_msg_id: cmid, message: `bench ${cmid} ${side} ${this.pad}` };
    sock.emit("chat:message", payload, (resp) => {
      if (!this.inflight.delete(rec)) return; // already timed out
      rec.tAck = performance.now();
      if (resp && resp.ok) {
        rec.id = resp.data.message.id;
        return;
      }
      const error = (resp && resp.error) || {};
      this.ackError(rec, error.code || "bad_ack");
      if (error.details && error.details.retry_after_ms != null) this.retryAfter.push(error.details.retry_after_ms);
    });
  }

  ackError(rec, code) {
    rec.code = code;
    this.count(this.errors, `chat:message:${code}`);
    this.count(this.errorAcks, code);
  }

  sweepAcks() {
    const limit = performance.now() - this.plan.ack_timeout * 1000;
    for (const rec of this.inflight) {
      if (rec.tSend < limit) {
        this.inflight.delete(rec);
        this.ackError(rec, "timeout");
      }
    }
  }

  // The room's next send (ms since t0) after `prev` in phase `idx`: one interval later in the same
  // phase, else at the room's offset `u` (0..1 of an interval) in the next phase with a rate. The
  // offset keeps rooms spread out across a rate change instead of bunching at the boundary.
  nextSend(prev, idx, u) {
    const phases = this.phases;
    if (prev !== null) {
      const t = prev + 1000 / phases[idx].rate;
      if (t < phases[idx].end) return { t, idx };
      idx++;
    }
    for (; idx < phases.length; idx++) {
      if (phases[idx].rate > 0) return { t: phases[idx].start + (u * 1000) / phases[idx].rate, idx };
    }
    return null;
  }

  // one timer chain per room, alternating sides; open loop (a late ack never delays a send)
  roomLoop(room, t0) {
    return new Promise((resolve) => {
      const u = Math.random();
      let k = 0;
      let at = this.nextSend(null, 0, u);
      const tick = () => {
        this.send(room, k % 2 === 0 ? "customer" : "agent", k, t0);
        k++;
        at = this.nextSend(at.t, at.idx, u);
        if (!at) return resolve();
        setTimeout(tick, Math.max(0, t0 + at.t - performance.now()));
      };
      if (!at) return resolve();
      setTimeout(tick, Math.max(0, t0 + at.t - performance.now()));
    });
  }

  async run(startEpoch) {
    await sleep(Math.max(0, startEpoch * 1000 - Date.now()));
    const t0 = performance.now();
    let start = 0;
    this.phases = this.plan.schedule.map((p) => ({ ...p, start, end: (start += p.seconds * 1000) }));
    const measuredStart = this.plan.schedule.findIndex((p) => p.measured);
    const tMeasure = t0 + this.plan.schedule.slice(0, measuredStart).reduce((s, p) => s + p.seconds, 0) * 1000;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    let cpu0 = null;
    let wall0 = 0;
    setTimeout(() => {
      this.phase = "measure";
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
      lag.enable();
    }, Math.max(0, tMeasure - performance.now()));
    this.phase = "warmup";
    const sweeper = setInterval(() => this.sweepAcks(), 1000);
    await Promise.all(this.active.map((room) => this.roomLoop(room, t0)));
    const cpu = process.cpuUsage(cpu0 || undefined);
    const cpuFraction = (cpu.user + cpu.system) / 1000 / Math.max(1, performance.now() - wall0);
    lag.disable();
    this.phase = "drain";
    const tDrain = performance.now();
    const ackDeadline = tDrain + (this.plan.ack_timeout + 5) * 1000;
    while (this.inflight.size > 0 && performance.now() < ackDeadline) await sleep(50);
    clearInterval(sweeper);
    this.sweepAcks();
    const deadline = performance.now() + this.plan.drain_timeout * 1000;
    while (performance.now() < deadline && [...this.sent.values()].some((r) => r.id && !r.deliveries)) await sleep(100);
    const drainSeconds = (performance.now() - tDrain) / 1000;
    this.phase = "verify";
    const checks = await this.verify();
    this.phase = "teardown";
    await this.finish();
    return this.summarise(checks, drainSeconds, cpuFraction, lag);
  }

  // -------------------------------------------------- verification

  async syncAll(sock, sessionId) {
    const messages = [];
    let after = 0;
    for (;;) {
      const data = await this.callData(sock, "chat:sync", { session_id: sessionId, after_seq: after }, 60000);
      if (!data) return null;
      messages.push(...data.messages);
      const more = data.has_more !== undefined ? data.has_more : data.messages.length >= 1000;
      if (!more || !data.messages.length) return messages;
      after = data.messages[data.messages.length - 1].seq;
    }
  }

  // a client the server dropped reconnects as the same user for its sync, as a real client would
  async synced(entry, sessionId) {
    if (!this.dropped.has(entry.sock) && entry.sock.connected) return this.syncAll(entry.sock, sessionId);
    const { url, ns, token, department } = entry.origin;
    const fresh = await this.connect(url, ns, token, department);
    if (!fresh) return null;
    try {
      return await this.syncAll(fresh, sessionId);
    } finally {
      fresh.close();
    }
  }

  async verify() {
    const c = { seq_errors: 0, sync_duplicates: 0, missing_in_sync: 0, lost: 0, lost_live: 0, live_duplicates: 0, unacked_stored: 0, undelivered_dropped: 0, sync_failed: 0 };
    const syncs = new Map();
    await pool(this.active, 32, async (room) => {
      syncs.set(room, [await this.synced(room, room.sessionId), await this.synced(room.agent, room.sessionId)]);
    });
    const ackedByRoom = new Map();
    for (const rec of this.sent.values()) {
      if (rec.deliveries > 1) c.live_duplicates += rec.deliveries - 1;
      if (!rec.id) continue;
      if (!ackedByRoom.has(rec.room)) ackedByRoom.set(rec.room, []);
      ackedByRoom.get(rec.room).push(rec);
    }
    for (const room of this.active) {
      const counters = syncs.get(room).map((messages) => {
        if (!messages) {
          c.sync_failed++;
          return null;
        }
        if (messages.some((m, i) => m.seq !== i + 1)) c.seq_errors++;
        const counter = new Map();
        for (const m of messages) counter.set(m.id, (counter.get(m.id) || 0) + 1);
        for (const n of counter.values()) if (n > 1) c.sync_duplicates += n - 1;
        return counter;
      });
      const ackedIds = new Set();
      for (const rec of ackedByRoom.get(room) || []) {
        ackedIds.add(rec.id);
        const missing = counters.filter((counter) => counter && !counter.get(rec.id)).length;
        c.missing_in_sync += missing;
        const receiver = rec.side === "customer" ? room.agent.sock : room.sock;
        const receiverDropped = this.dropped.has(receiver);
        if (!rec.deliveries && receiverDropped) c.undelivered_dropped++;
        else if (!rec.deliveries) c.lost_live++;
        if ((!rec.deliveries && !receiverDropped) || missing) c.lost++;
      }
      if (counters[0]) for (const id of counters[0].keys()) if (!ackedIds.has(id)) c.unacked_stored++;
    }
    return c;
  }

  async finish() {
    if (this.plan.mode !== "idle") {
      await pool(this.active || [], 64, (room) => this.callData(room.sock, "chat:end", { session_id: room.sessionId }, 30000));
    }
    for (const entry of [...this.rooms, ...this.agents]) if (entry.sock) entry.sock.close();
  }

  summarise(checks, drainSeconds, cpuFraction, lag) {
    const measured = [...this.sent.values()].filter((r) => r.measured);
    // per-second buckets over the whole schedule (the overload run reads them)
    const timeline = {};
    for (const r of this.sent.values()) {
      const b = (timeline[r.sec] ||= { sent: 0, accepted: 0, unavailable: 0, other_errors: 0, errors: {}, latency_ms: [], ack_ms: [] });
      b.sent++;
      if (r.code) this.count(b.errors, r.code);
      if (r.id) {
        b.accepted++;
        b.ack_ms.push(r.tAck - r.tSend);
        if (r.deliveries) b.latency_ms.push(r.tDeliv - r.tSend);
      } else if (r.code === "unavailable") b.unavailable++;
      else if (r.code) b.other_errors++;
    }
    return {
      sent: measured.length,
      acked: measured.filter((r) => r.id).length,
      delivered: measured.filter((r) => r.deliveries).length,
      latency_ms: measured.filter((r) => r.deliveries).map((r) => r.tDeliv - r.tSend),
      ack_ms: measured.filter((r) => r.id).map((r) => r.tAck - r.tSend),
      sent_total: this.sent.size,
      errors: this.errors,
      error_acks: this.errorAcks,
      retry_after_ms: this.retryAfter,
      unexpected: this.unexpected,
      echoes: this.echoes,
      disconnect_kinds: this.disconnectKinds,
      clients_dropped: this.dropped.size,
      lag_p99_ms: lag.count ? lag.percentile(99) / 1e6 : 0,
      cpu_fraction: cpuFraction,
      drain_seconds: drainSeconds,
      timeline,
      ...checks,
    };
  }
}

async function childMain(planPath, wid) {
  const plan = JSON.parse(fs.readFileSync(planPath, "utf8"));
  const w = new Worker(plan, wid);
  const send = (msg) => new Promise((resolve) => process.send(msg, resolve));
  const next = () => new Promise((resolve) => process.once("message", resolve));
  const setup = await w.setup();
  await send({ kind: "ready", setup });
  const go = await next();
  if (plan.mode === "idle") {
    await sleep(Math.max(0, go.hold * 1000));
    w.phase = "teardown";
    await w.finish();
    await send({ kind: "done", result: { dropped: w.dropped.size } });
  } else {
    await send({ kind: "done", result: await w.run(go.start) });
  }
  process.exit(0);
}

// ------------------------------------------------------------------ parent: orchestration

function sum(results, key) {
  return results.reduce((s, r) => s + (r[key] || 0), 0);
}

function mergeCounts(list) {
  const out = {};
  for (const table of list) for (const [k, v] of Object.entries(table)) out[k] = (out[k] || 0) + v;
  return out;
}

function mergeTimeline(results) {
  const merged = {};
  for (const r of results) {
    for (const [sec, b] of Object.entries(r.timeline)) {
      const m = (merged[sec] ||= { sent: 0, accepted: 0, unavailable: 0, other_errors: 0, errors: {}, latency_ms: [], ack_ms: [] });
      for (const k of ["sent", "accepted", "unavailable", "other_errors"]) m[k] += b[k];
      m.errors = mergeCounts([m.errors, b.errors]);
      for (const k of ["latency_ms", "ack_ms"]) for (const x of b[k]) m[k].push(x);
    }
  }
  return Object.keys(merged)
    .map(Number)
    .sort((a, b) => a - b)
    .map((sec) => {
      const b = merged[sec];
      return { t: sec, sent: b.sent, accepted: b.accepted, delivered: b.latency_ms.length, unavailable: b.unavailable, other_errors: b.other_errors, errors: b.errors, latency_p99_ms: percentiles(b.latency_ms).p99, ack_p99_ms: percentiles(b.ack_ms).p99 };
    });
}

function report(plan, setups, results) {
  const measuredSeconds = plan.schedule.filter((p) => p.measured).reduce((s, p) => s + p.seconds, 0);
  const connectSeconds = Math.max(...setups.map((s) => s.t_connect_end)) - Math.min(...setups.map((s) => s.t_connect_start));
  const connected = sum(setups, "connected");
  const active = sum(setups, "active");
  const assignSeconds = Math.max(...setups.map((s) => s.assign_seconds));
  const errorKinds = mergeCounts(results.map((r) => r.errors));
  const dup = sum(results, "live_duplicates") + sum(results, "sync_duplicates");
  const errorCount = Object.values(errorKinds).reduce((a, b) => a + b, 0) + sum(results, "echoes") + sum(results, "seq_errors") + sum(results, "clients_dropped") + sum(results, "sync_failed");
  const offered = plan.rooms.length * plan.schedule.find((p) => p.measured).rate;
  const all = (key) => results.flatMap((r) => r[key]);
  return {
    replicas: plan.urls.length,
    rooms: plan.rooms.length,
    rate: plan.schedule.find((p) => p.measured).rate,
    duration: measuredSeconds,
    connections_per_s: connectSeconds > 0 ? Math.round((connected / connectSeconds) * 10) / 10 : null,
    connect_seconds: Math.round(connectSeconds * 100) / 100,
    sent: sum(results, "sent"),
    delivered: sum(results, "delivered"),
    delivered_per_s: Math.round((sum(results, "delivered") / measuredSeconds) * 10) / 10,
    latency_ms: percentiles(all("latency_ms")),
    ack_ms: percentiles(all("ack_ms")),
    lost: sum(results, "lost"),
    duplicates: dup,
    errors: errorCount,
    // diagnostics
    generator: "node",
    offered_per_s: offered,
    sent_per_s: Math.round((sum(results, "sent") / measuredSeconds) * 10) / 10,
    acked: sum(results, "acked"),
    active_chats: active,
    agents: plan.agents.length,
    max_chats: plan.max_chats,
    placement: plan.placement,
    connect_ms: percentiles(setups.flatMap((s) => s.connect_ms)),
    assign_seconds: Math.round(assignSeconds * 100) / 100,
    chats_assigned_per_s: assignSeconds > 0 ? Math.round((active / assignSeconds) * 10) / 10 : null,
    settle_seconds: Math.round(Math.max(...setups.map((s) => s.settle_seconds)) * 100) / 100,
    setup_broadcasts_received: mergeCounts(setups.map((s) => s.control_events)),
    error_acks: mergeCounts(results.map((r) => r.error_acks)),
    retry_after_ms: percentiles(all("retry_after_ms")),
    ...Object.fromEntries(["lost_live", "missing_in_sync", "seq_errors", "live_duplicates", "sync_duplicates", "unacked_stored", "echoes", "unexpected", "clients_dropped", "undelivered_dropped", "sync_failed"].map((k) => [k, sum(results, k)])),
    disconnect_kinds: mergeCounts(results.map((r) => r.disconnect_kinds)),
    error_kinds: errorKinds,
    messages_total: sum(results, "sent_total"),
    drain_seconds: Math.round(Math.max(...results.map((r) => r.drain_seconds)) * 100) / 100,
    workers: plan.workers,
    client_cpu: results.map((r) => Math.round(r.cpu_fraction * 100) / 100),
    client_loop_lag_ms: { p99: Math.round(Math.max(...results.map((r) => r.lag_p99_ms)) * 100) / 100 },
    warmup: plan.schedule.filter((p) => !p.measured).reduce((s, p) => s + p.seconds, 0),
    message_bytes: plan.message_bytes,
    schedule: plan.schedule,
    timeline: mergeTimeline(results),
    run_id: plan.run_id,
    urls: plan.urls,
    label: plan.label,
    time: new Date().toISOString().slice(0, 19) + "Z",
  };
}

async function parentMain(planPath) {
  const plan = JSON.parse(fs.readFileSync(planPath, "utf8"));
  const children = Array.from({ length: plan.workers }, (_, wid) => fork(new URL(import.meta.url).pathname, ["--child", planPath, String(wid)], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const inbox = children.map((child) => {
    const queue = [];
    const waiters = [];
    child.on("message", (msg) => (waiters.length ? waiters.shift()(msg) : queue.push(msg)));
    child.on("exit", (code) => {
      const msg = { kind: "failed", code };
      if (code) waiters.length ? waiters.shift()(msg) : queue.push(msg);
    });
    return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)));
  });
  const ready = await Promise.all(inbox.map((recv) => recv()));
  if (ready.some((m) => m.kind !== "ready")) throw new Error(`a worker failed during set-up: ${JSON.stringify(ready)}`);
  const setups = ready.map((m) => m.setup);
  const connected = sum(setups, "connected");
  log(`connected ${connected} sockets, ${sum(setups, "active")} chats active`);
  if (plan.mode === "idle") {
    const seconds = Math.max(...setups.map((s) => s.t_connect_end)) - Math.min(...setups.map((s) => s.t_connect_start));
    log(`IDLE_CONNECTED ${connected}`);
    children.forEach((c) => c.send({ hold: plan.hold }));
    await Promise.all(inbox.map((recv) => recv()));
    process.stdout.write(JSON.stringify({ mode: "idle", sockets: connected, connections_per_s: Math.round((connected / seconds) * 10) / 10, connect_ms: percentiles(setups.flatMap((s) => s.connect_ms)), error_kinds: mergeCounts(setups.map((s) => s.errors)) }) + "\n");
    return;
  }
  const start = Date.now() / 1000 + 0.5;
  children.forEach((c) => c.send({ start }));
  let offset = 0;
  for (const phase of plan.schedule) {
    if (phase.measured) {
      const measured = plan.schedule.filter((p) => p.measured).reduce((s, p) => s + p.seconds, 0);
      log(`CHAT_LOAD_WINDOW ${(start + offset).toFixed(3)} ${(start + offset + measured).toFixed(3)}`);
      break;
    }
    offset += phase.seconds;
  }
  const done = await Promise.all(inbox.map((recv) => recv()));
  const failed = done.filter((m) => m.kind !== "done");
  if (failed.length) throw new Error(`a worker failed: ${JSON.stringify(failed)}`);
  const out = report(plan, setups, done.map((m) => m.result));
  if (out.lost || out.duplicates) log(`!!! ${out.lost} LOST and ${out.duplicates} DUPLICATED messages: server bugs`);
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = out.lost || out.duplicates ? 1 : 0;
}

const argv = process.argv.slice(2);
if (argv[0] === "--child") {
  childMain(argv[1], Number(argv[2]));
} else if (argv[0] === "--plan" && argv[1]) {
  parentMain(argv[1]).catch((err) => {
    log(`failed: ${err.stack || err}`);
    process.exit(2);
  });
} else {
  process.stderr.write("usage: node chat_load.mjs --plan plan.json   (see bench/hotpath_bench.py)\n");
  process.exit(2);
}
