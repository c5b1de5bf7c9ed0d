/*!
 * The chat delivery protocol (PROTOCOL.md, DESIGN.md "Real time") for one chat session, shared by
 * the customer widget and the agent console. An ES module, served as is (no build step): the
 * console imports it (`import { Delivery } from "../delivery.js"`), the widget — a classic
 * script — loads it with `import(base + "/static/delivery.js")`, which leaves no global behind.
 * It knows nothing of the DOM or of socket.io: the page gives it `call(event, payload)` (a
 * promise of the ack's data, rejecting with the ack's `{code, message, details}`) and is told
 * what changed through hooks.
 *
 * What it keeps:
 * - messages by `seq` (a Map): a push, an ack and a sync of one message change nothing twice;
 *   `syncedSeq` is the end of the contiguous part (what `chat:sync` resumes from), `lastSeq` the
 *   highest seen. A message past a gap makes it sync again.
 * - the outbox: what was typed but not acknowledged, in order, each entry under its
 *   `client_msg_id` (given before it is shown). It goes out one message at a time, so the other
 *   party reads them in the order typed; after a reconnect, a timeout or a retry an entry is sent
 *   again with the same id, and the server keeps it once. An acknowledged message (from the ack,
 *   a push or a sync) settles its entry.
 * - `chat:sync` from `syncedSeq`, page by page while `has_more`; a sync asked for while one runs
 *   (a reconnect, `chat:resync`, a gap) runs once more after it, never twice at a time.
 *
 * Outbox entries are plain objects: `{client_msg_id, message, state: "sending" | "failed",
 * error?, final?, files?, ...}` (pages may add fields of their own). `files` are sent as
 * `attachments` (their `id`s) once `prepare(entry)` (the page's upload step) has given them ids.
 */

const SYNC_PAGE_GUARD = 50;     // chat:sync pages per catch-up, a guard against loops
const RETRY_AFTER_MS = 1000;     // a timed-out or refused-for-now send is tried again after this

/** A new client_msg_id (a v4 UUID; crypto.randomUUID is missing on pages served over plain http). */
export function newClientMsgId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.prototype.map.call(b, (x) => (x + 256).toString(16).slice(1)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const noop = () => {};

export class Delivery {
  /**
   * options:
   * - `sessionId`; `call(event, payload)`; `connected()`: whether a send can go out now;
   * - `outbox`: entries kept from before (a reload), sent first;
   * - `mine(message)`: whether a message is this party's (only those settle outbox entries);
   * - `retryable`: error codes retried by themselves (default `timeout`, `rate_limited` after
   *   its `retry_after_ms`, `unavailable`); any other error marks the entry failed until
   *   `retry()`. `offline` / `disconnected` leave it waiting for the next `flush()`;
   * - `prepare(entry)`: a promise run before an entry is sent (uploads); its rejection is the
   *   send's error (`final: true` on it: retrying cannot help);
   * - `fetchPage(afterSeq)`: one page of history (default `chat:sync`);
   * - hooks: `onMessages(added, {live, settled})` after messages were merged or entries
   *   settled; `onOutbox(entry)` when an entry's state changed; `onPage(data)` for each sync
   *   page (after its messages); `onSynced()` after a whole catch-up; `onSyncError(error)`.
   */
  constructor(options) {
    this.sessionId = options.sessionId || null;
    this.call = options.call;
    this.connected = options.connected || (() => true);
    this.mine = options.mine || (() => true);
    this.retryable = options.retryable || ["timeout", "rate_limited", "unavailable"];
    this.prepare = options.prepare || null;
    this.fetchPage = options.fetchPage
      || ((afterSeq) => this.call("chat:sync", { session_id: this.sessionId, after_seq: afterSeq }));
    this.onMessages = options.onMessages || noop;
    this.onOutbox = options.onOutbox || noop;
    this.onPage = options.onPage || noop;
    this.onSynced = options.onSynced || noop;
    this.onSyncError = options.onSyncError || noop;
    this.messages = new Map();      // seq -> Message
    this.syncedSeq = 0;             // every seq up to this one is here
    this.lastSeq = 0;               // the highest seq here
    this.outbox = (options.outbox || []).map((entry) => Object.assign({}, entry, { state: "sending" }));
    this.loaded = false;            // a first catch-up completed
    this.attempt = null;            // the send in flight (an answer to an older one changes nothing)
    this.syncing = null;
    this.again = false;
    this.closed = false;
    this.timer = null;
  }

  // ---------------------------------------------------------------- messages

  /** Merge messages from the server (a push, an ack, a sync page): keyed by seq. Returns the
   *  ones that were new. `live`: they arrived as pushes (the page may alert about them). */
  receive(list, { live = true } = {}) {
    const added = [];
    if (this.closed) return added;
    let settled = 0;
    for (const message of list || []) {
      if (!message || (this.sessionId && message.session_id !== this.sessionId)) continue;
      if (message.client_msg_id && this.mine(message) && this.settle(message.client_msg_id)) settled += 1;
      if (this.messages.has(message.seq)) continue;
      this.messages.set(message.seq, message);
      this.lastSeq = Math.max(this.lastSeq, message.seq);
      added.push(message);
    }
    while (this.messages.has(this.syncedSeq + 1)) this.syncedSeq += 1;
    if (added.length || settled) this.onMessages(added, { live, settled });
    if (added.length && this.lastSeq > this.syncedSeq && this.loaded && !this.syncing) this.sync();   // a gap
    return added;
  }

  /** The messages in seq order. */
  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  // ---------------------------------------------------------------- the outbox

  /** Queue an entry ({message, files?, ...}); it gets its client_msg_id here unless it has one. */
  enqueue(entry) {
    const queued = Object.assign(entry, {
      client_msg_id: entry.client_msg_id || newClientMsgId(), state: "sending", error: null,
    });
    this.outbox.push(queued);
    this.flush();
    return queued;
  }

  settle(clientMsgId) {
    const index = this.outbox.findIndex((entry) => entry.client_msg_id === clientMsgId);
    if (index < 0) return false;
    this.outbox.splice(index, 1);
    return true;
  }

  /** Send the outbox, one entry at a time, oldest first; stops on a disconnect (the next
   *  flush() carries on), waits on errors worth retrying, marks others failed and goes on. */
  flush() {
    if (this.attempt || this.closed || !this.connected()) return;
    const next = this.outbox.find((entry) => entry.state !== "failed");
    if (!next) return;
    const attempt = this.attempt = {};
    clearTimeout(this.timer);
    Promise.resolve(this.prepare && next.files ? this.prepare(next) : null)
      .then(() => {
        const payload = { session_id: this.sessionId, client_msg_id: next.client_msg_id, message: next.message };
        if (next.files) payload.attachments = next.files.map((f) => f.id);
        return this.call("chat:message", payload);
      })
      .then((data) => {
        const current = this.attempt === attempt;
        if (current) this.attempt = null;
        this.receive([data.message], { live: false });
        if (current) this.flush();
      }, (error) => {
        if (this.attempt !== attempt) return;
        this.attempt = null;
        // settled meanwhile (a push or a sync had it), or failed for good (the chat ended)
        if (this.closed || this.outbox.indexOf(next) < 0 || (next.state === "failed" && next.final)) {
          this.flush();
          return;
        }
        const code = error && error.code;
        if (code === "offline" || code === "disconnected") return;   // the next connect flushes it
        if (this.retryable.indexOf(code) >= 0 && !error.final) {
          const wait = (code === "rate_limited" && error.details && error.details.retry_after_ms) || RETRY_AFTER_MS;
          this.timer = setTimeout(() => this.flush(), wait);
          return;
        }
        next.state = "failed";
        next.error = (error && error.message) || "Something went wrong";
        next.final = !!(error && error.final);   // e.g. a refused file: retrying cannot help
        this.onOutbox(next);
        this.flush();
      });
  }

  /** Send a failed entry again, with the same client_msg_id. */
  retry(clientMsgId) {
    const entry = this.outbox.find((e) => e.client_msg_id === clientMsgId);
    if (!entry) return;
    entry.state = "sending";
    entry.error = null;
    this.onOutbox(entry);
    this.flush();
  }

  /** The connection dropped: the send in flight will be made again (same id) by the next flush(). */
  interrupt() {
    this.attempt = null;
    clearTimeout(this.timer);
  }

  /** The chat closed with entries unsent: they fail for good (no retry can deliver them). */
  failAll(reason) {
    for (const entry of this.outbox) {
      if (entry.state === "failed" && entry.final) continue;
      entry.state = "failed";
      entry.error = reason;
      entry.final = true;
      this.onOutbox(entry);
    }
  }

  // ---------------------------------------------------------------- catching up

  /** chat:sync from syncedSeq, page by page while has_more; resolves when caught up (never
   *  rejects: errors go to onSyncError). Asked again while running, it runs once more after. */
  sync() {
    if (this.closed) return Promise.resolve();
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          for (let pages = 0, more = true; more && pages < SYNC_PAGE_GUARD; pages += 1) {
            const data = await this.fetchPage(this.syncedSeq);
            if (this.closed) return;
            const list = data.messages || [];
            this.receive(list, { live: this.loaded });
            this.onPage(data);
            more = Boolean(data.has_more) && list.length > 0;
          }
          this.loaded = true;
          if (this.closed) return;
          this.onSynced();
        } while (this.again && !this.closed);
      } catch (error) {
        if (!this.closed) this.onSyncError(error);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  /** chat:resync {session_ids}: live pushes of these sessions may have been missed. */
  resync(sessionIds) {
    if (this.closed || (sessionIds || []).indexOf(this.sessionId) < 0) return null;
    return this.sync();
  }

  /** The page dropped this chat: nothing more is sent, synced or reported. */
  close() {
    this.closed = true;
    this.interrupt();
  }
}
