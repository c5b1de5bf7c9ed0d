"""static/delivery.js, the chat delivery protocol the widget and the console share, on its own in
Chromium: the module as the server serves it, driven against a scripted fake of the server's
acks (the widget and console browser tests run it against the real server)."""

from __future__ import annotations

import uuid

from playwright.async_api import Page

from browser_support import demo_url

pytest_plugins = ["chat_fixtures", "browser_fixtures"]

# A fake server for one session: `call` records every emit; chat:message waits for the test to
# answer it (`pending`), chat:sync answers from `store` two messages a page.
HARNESS = """
async (url) => {
  const { Delivery, newClientMsgId } = await import(url);
  const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
  const msg = (seq, extra = {}) => Object.assign(
    { session_id: "s", seq, sender_type: "agent", message: "m" + seq, client_msg_id: null }, extra);
  const h = { Delivery, newClientMsgId, tick, msg, log: [], pending: [], store: [], online: true, changed: [] };
  h.call = (event, payload) => {
    h.log.push([event, JSON.parse(JSON.stringify(payload))]);
    if (event === "chat:sync") {
      const after = h.store.filter((m) => m.seq > payload.after_seq);
      return Promise.resolve({ messages: after.slice(0, 2), has_more: after.length > 2, session: { id: "s" } });
    }
    return new Promise((resolve, reject) => h.pending.push({ event, payload, resolve, reject }));
  };
  h.make = (options = {}) => new Delivery(Object.assign({
    sessionId: "s", call: h.call, connected: () => h.online,
    mine: (m) => m.sender_type === "customer",
    onOutbox: (entry) => h.changed.push([entry.message, entry.state]),
  }, options));
  h.sent = () => h.log.filter((e) => e[0] === "chat:message").map((e) => e[1]);
  h.syncs = () => h.log.filter((e) => e[0] === "chat:sync").map((e) => e[1].after_seq);
  window.h = h;
}
"""


async def harness(page: Page, base: str) -> None:
    await page.evaluate(HARNESS, f"{base}/static/delivery.js")


async def test_the_outbox_sends_one_at_a_time_and_resends_with_the_same_id(chat_server, open_page):
    page = await open_page(f"{chat_server.url}/health")
    await harness(page, chat_server.url)
    result = await page.evaluate("""async () => {
      const d = h.make(), out = {};
      const one = d.enqueue({ message: "one" }), two = d.enqueue({ message: "two" });
      await h.tick();
      out.inFlight = h.pending.length;                        // one at a time
      h.online = false; d.interrupt();                         // the connection drops mid-send
      h.pending.shift().reject({ code: "disconnected" });
      d.flush(); await h.tick();
      out.whileOffline = h.pending.length;
      h.online = true; d.flush(); await h.tick();              // reconnected
      out.resentId = h.pending[0].payload.client_msg_id === one.client_msg_id;
      h.pending.shift().resolve({ message: h.msg(1, { sender_type: "customer", client_msg_id: one.client_msg_id }) });
      await h.tick();
      out.next = h.pending[0].payload.message;
      // its push arrives before its ack: the entry settles once, the ack changes nothing
      d.receive([h.msg(2, { sender_type: "customer", client_msg_id: two.client_msg_id })]);
      out.outboxAfterPush = d.outbox.length;
      h.pending.shift().resolve({ message: h.msg(2, { sender_type: "customer", client_msg_id: two.client_msg_id }) });
      await h.tick();
      d.receive([h.msg(1, { sender_type: "customer", client_msg_id: one.client_msg_id, message: "changed" })]);
      out.texts = d.ordered().map((m) => m.message);
      out.sent = h.sent().map((p) => p.message);
      out.ids = new Set(h.sent().map((p) => p.client_msg_id)).size;
      out.uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(h.newClientMsgId());
      return out;
    }""")
    assert result == {
        "inFlight": 1,
        "whileOffline": 0,
        "resentId": True,
        "next": "two",
        "outboxAfterPush": 0,
        "texts": ["m1", "m2"],
        "sent": ["one", "one", "two"],
        "ids": 2,
        "uuid": True,
    }


async def test_errors_fail_an_entry_until_retry_while_the_rest_goes_on(chat_server, open_page):
    page = await open_page(f"{chat_server.url}/health")
    await harness(page, chat_server.url)
    result = await page.evaluate("""async () => {
      const out = {};
      // the console's choice: "unavailable" is the agent's to retry
      const d = h.make({ retryable: ["timeout", "rate_limited"] });
      const a = d.enqueue({ message: "a" }); d.enqueue({ message: "b" });
      await h.tick();
      h.pending.shift().reject({ code: "unavailable", message: "busy" });
      await h.tick();
      out.failed = [a.state, a.error, a.final];
      out.nextSent = h.pending[0].payload.message;            // the rest goes on, in order
      h.pending.shift().resolve({ message: h.msg(1, { sender_type: "customer", client_msg_id: d.outbox[1].client_msg_id }) });
      await h.tick();
      d.retry(a.client_msg_id); await h.tick();
      out.retriedId = h.pending[0].payload.client_msg_id === a.client_msg_id;
      // a timeout is retried by itself (after a second), with the same id
      h.pending.shift().reject({ code: "timeout" });
      await h.tick(1200);
      out.afterTimeout = h.pending.length === 1 && h.pending[0].payload.client_msg_id === a.client_msg_id;
      h.pending.shift().resolve({ message: h.msg(2, { sender_type: "customer", client_msg_id: a.client_msg_id }) });
      await h.tick();
      out.outbox = d.outbox.length;
      // a refused upload (prepare) is final; the chat ending fails what is left, for good
      const e = h.make({ prepare: () => Promise.reject({ code: "upload_failed", message: "too big", final: true }) });
      const file = e.enqueue({ message: "", files: [{ id: null }] });
      const later = e.enqueue({ message: "later" });
      await h.tick();
      out.refused = [file.state, file.final];
      e.failAll("the chat ended");
      out.ended = [later.state, later.error, later.final];
      out.changes = h.changed.length;
      return out;
    }""")
    assert result == {
        "failed": ["failed", "busy", False],
        "nextSent": "b",
        "retriedId": True,
        "afterTimeout": True,
        "outbox": 0,
        "refused": ["failed", True],
        "ended": ["failed", "the chat ended", True],
        "changes": 4,  # a failed, a retried, the refused file, the entry the end failed
    }


async def test_sync_pages_while_has_more_coalesces_and_closes_gaps(chat_server, open_page):
    page = await open_page(f"{chat_server.url}/health")
    await harness(page, chat_server.url)
    result = await page.evaluate("""async () => {
      const out = {}, pages = [];
      let synced = 0;
      const d = h.make({ onPage: (data) => pages.push(data.messages.length), onSynced: () => { synced += 1; } });
      h.store = [1, 2, 3].map((n) => h.msg(n));
      await d.sync();
      out.first = [h.syncs(), pages.slice(), d.syncedSeq, synced];
      // asked three times while one runs (a reconnect, chat:resync, another): one more run after it
      h.store.push(h.msg(4), h.msg(5));
      h.log.length = 0;
      await Promise.all([d.sync(), d.resync(["s"]), d.sync()]);
      out.coalesced = h.syncs();
      out.otherSession = d.resync(["t"]);
      // a push past a gap fetches what is missing
      h.store.push(h.msg(6), h.msg(7));
      h.log.length = 0;
      d.receive([h.msg(7)]);
      out.gapSeq = [d.syncedSeq, d.lastSeq];
      await h.tick(); await h.tick();
      out.afterGap = [h.syncs(), d.syncedSeq, d.ordered().map((m) => m.seq)];
      d.receive([h.msg(8, { session_id: "t" })]);             // another session's message
      out.ignored = d.lastSeq;
      d.close();
      out.closed = await d.sync().then(() => h.log.filter((e) => e[0] === "chat:sync").length);
      return out;
    }""")
    assert result == {
        "first": [[0, 2], [2, 1], 3, 1],
        "coalesced": [3, 5],
        "otherSession": None,
        "gapSeq": [5, 7],
        "afterGap": [[5], 7, [1, 2, 3, 4, 5, 6, 7]],
        "ignored": 7,
        "closed": 1,  # only the gap's: a closed delivery fetches nothing
    }


async def test_the_module_loads_from_another_origin_and_the_widget_leaves_no_global(chat_server, open_page, proxy):
    """The widget runs on customers' sites: it imports delivery.js across origins (the static
    route allows any origin; the proxy's port makes another origin) and leaves no global of its
    own behind."""
    base = chat_server.url
    page = await open_page(f"{proxy.url}/health")
    assert await page.evaluate("(url) => import(url).then((m) => typeof m.Delivery)", f"{base}/static/delivery.js") == (
        "function"
    )
    secret = chat_server.settings.jwt_secret
    page = await open_page(demo_url(base, secret, uuid.uuid4(), "general"))
    await page.get_by_test_id("launcher").click()
    await page.wait_for_function("document.querySelector('#support-widget').shadowRoot.querySelector('.panel')")
    await page.wait_for_function(
        "performance.getEntriesByType('resource').some((e) => e.name.endsWith('/static/delivery.js'))"
    )
    leaked = await page.evaluate("['io', 'Delivery', 'newClientMsgId', 'h'].filter((name) => name in window)")
    assert leaked == []
