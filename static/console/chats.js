// The agent's chats: a list with unread counts, one pane per chat (history, composer, typing,
// read receipts, notes, transfer, end), and what keeps them exact across reconnects.
//
// Each chat's delivery (../delivery.js, shared with the widget) keeps its messages by seq (no
// duplicates, always in order) and resumes chat:sync from the contiguous part of the history. A
// message the agent sends waits in its outbox under its client_msg_id until the server
// acknowledges it; the outbox goes out one message at a time, so the customer reads them in the
// order typed, and after a reconnect it is resent with the same ids (the server returns the
// first message again for a repeated id). A send the server refuses shows "Not sent" with a
// Retry: the agent decides (only timeouts and rate limits are retried by themselves).

import { Delivery } from "../delivery.js";
import { desktopNotify, setUnreadTitle, toast } from "./alerts.js";
import { api, customerLabel, el, formatTime, label, messageBody, ratingNodes } from "./lib.js";
import { attachControls, attachmentList, dropZone, pendingList, showProgress, uploadFile } from "./attachments.js";
import { agentName, chatsOnScreen, departmentLabel, emit, isPhone, on, rememberDepartment, setSection, state } from "./state.js";

const chats = new Map();   // session id -> chat
let focusedId = null;
let canned = [];           // canned responses; the control is hidden when there are none
const ENDED = new Set(["ended", "timed_out", "abandoned"]);
const TYPING_IDLE_MS = 4000;
const TYPING_REPEAT_MS = 3000;
const PEER_TYPING_MS = 8000;

export function initChats() {
  document.addEventListener("visibilitychange", () => markSeen(focused()));
  window.addEventListener("focus", () => markSeen(focused()));
  on("section", () => markSeen(focused()));
  on("roster", () => chats.forEach((chat) => {
    if (!chat.dom.transferPanel.hidden) fillTransferAgents(chat);
  }));
}

export function focused() {
  return chats.get(focusedId) || null;
}

function openChats() {
  return [...chats.values()];
}

function call(event, data) {
  return state.live.call(event, data);
}

function chatTitle(session) {
  return session.subject || session.customer_name || `Customer ${session.customer_id.slice(0, 8)}`;
}

// ---------------------------------------------------------------- opening and closing

/** Show a chat (idempotent): build it, load its history, maybe focus it. ``watch``: a supervisor
 * follows someone else's chat read-only (chat:watch), with notes and a take-over. */
export function openChat(session, { focus = false, reveal = false, alert = null, watch = false } = {}) {
  let chat = chats.get(session.id);
  if (!chat) {
    chat = createChat(session, watch);
    chats.set(session.id, chat);
    document.getElementById("chat-list").append(chat.dom.tab);
    document.getElementById("chat-area").append(chat.dom.pane);
    if (alert) alertChat(chat, alert, chatTitle(session));
  } else {
    applySession(chat, session);
  }
  sync(chat);
  if (focus || !focusedId) focusChat(chat.id, { reveal });
  renderList();
  return chat;
}

function createChat(session, watching = false) {
  rememberDepartment(session.department);
  const chat = {
    id: session.id,
    session,
    watching,              // a supervisor following the chat without being its agent
    rated: null,           // {rating, comment} once the customer rated the chat
    delivery: null,        // messages by seq and the outbox (../delivery.js)
    notes: new Map(),      // id -> note
    nodes: new Map(),      // timeline key -> element
    readSeq: session.agent_last_read_seq || 0,
    sentReadSeq: session.agent_last_read_seq || 0,
    customerReadSeq: session.customer_last_read_seq || 0,
    noteMode: false,
    typingSent: false,
    typingSentAt: 0,
    typingTimer: null,
    peerTypingTimer: null,
    ended: false,
  };
  chat.delivery = new Delivery({
    sessionId: session.id,
    call,
    connected: () => Boolean(state.live && state.live.connected()),
    mine: (message) => message.sender_type === "agent",
    retryable: ["timeout", "rate_limited"],
    prepare: uploadFiles,
    fetchPage: (afterSeq) => fetchPage(chat, afterSeq),
    onMessages: (added, { live }) => messagesAdded(chat, added, live),
    onOutbox: (entry) => refreshPending(chat, entry),
    onPage: (data) => {
      for (const note of data.notes || []) chat.notes.set(note.id, note);
      applySession(chat, data.session);
    },
    onSynced: () => renderTimeline(chat),
    onSyncError: (error) => {
      if (error.code === "not_found" || error.code === "forbidden") removeChat(chat, "This chat is no longer yours");
      else if (error.code !== "disconnected") toast(error.message, { title: "Could not load the chat", kind: "error" });
    },
  });
  chat.dom = buildChat(chat);
  applySession(chat, session);
  setWatching(chat, watching);
  return chat;
}

function focusChat(id, { reveal = false } = {}) {
  const chat = chats.get(id);
  if (!chat) return;
  focusedId = id;
  for (const other of chats.values()) {
    const current = other.id === id;
    other.dom.pane.hidden = !current;
    other.dom.tabButton.setAttribute("aria-current", current ? "true" : "false");
  }
  document.getElementById("no-chat").hidden = true;
  emit("focus", chat.session);
  if (reveal) {
    if (isPhone()) setSection("chat");
    chat.dom.composer.focus();
  }
  scrollToEnd(chat);
  markSeen(chat);
}

function removeChat(chat, reason = "") {
  if (chats.get(chat.id) !== chat) return;
  if (chat.watching && state.live?.connected()) call("chat:unwatch", { session_id: chat.id }).catch(() => {});
  chats.delete(chat.id);
  chat.delivery.close();
  clearTimeout(chat.typingTimer);
  clearTimeout(chat.peerTypingTimer);
  chat.dom.tab.remove();
  chat.dom.pane.remove();
  if (focusedId === chat.id) {
    focusedId = null;
    const next = chats.values().next().value;
    if (next) focusChat(next.id);
    else {
      document.getElementById("no-chat").hidden = false;
      emit("focus", null);
    }
  }
  renderList();
  if (reason) toast(reason, { title: chatTitle(chat.session) });
}

function renderList() {
  document.getElementById("chat-list-empty").hidden = chats.size > 0;
  updateTotals();
}

// ---------------------------------------------------------------- building the DOM

function buildChat(chat) {
  const id = chat.id;
  const tabButton = el("button", {
    type: "button", class: "chat-tab", testid: "chat-tab", dataset: { sessionId: id },
    onclick: () => focusChat(id, { reveal: true }),
  },
  el("span", { class: "chat-tab-label", testid: "chat-tab-label" }),
  el("span", { class: "chat-tab-meta" }),
  el("span", { class: "badge", testid: "unread", hidden: true }));
  const tab = el("li", {}, tabButton);

  const composerId = `composer-${id}`;
  const composer = el("textarea", {
    id: composerId, class: "composer-input", testid: "composer", rows: 2, maxlength: 5000,
    placeholder: "Write a reply…", oninput: () => onComposerInput(chat), onkeydown: (e) => onComposerKey(chat, e),
  });
  const noteToggle = el("button", {
    type: "button", class: "btn btn-small note-toggle", testid: "note-toggle", "aria-pressed": "false",
    text: "Internal note", onclick: () => setNoteMode(chat, !chat.noteMode),
  });
  const cannedSelect = el("select", {
    class: "canned", testid: "canned", "aria-label": "Insert a canned response",
    onchange: (e) => insertCanned(chat, e.target),
  });
  const send = el("button", { type: "submit", class: "btn btn-primary", testid: "send", text: "Send" });
  const form = el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); submit(chat); } },
    el("label", { for: composerId, class: "visually-hidden", text: "Message" }),
    composer,
    el("div", { class: "composer-bar" },
      attachControls((files) => attachFiles(chat, files), { input: composer, zones: [] }),
      noteToggle, cannedSelect,
      el("span", { class: "composer-hint", text: "Enter to send · Shift+Enter for a new line" }),
      send));

  const transferAgent = el("select", { id: `transfer-agent-${id}`, testid: "transfer-agent" });
  const transferDepartment = el("input", {
    id: `transfer-dept-${id}`, testid: "transfer-department", list: "departments-list", autocomplete: "off",
  });
  const transferPanel = el("div", { class: "transfer-panel", testid: "transfer-panel", hidden: true },
    el("div", { class: "transfer-row" },
      el("label", { for: transferAgent.id, text: "To an agent" }), transferAgent,
      el("button", { type: "button", class: "btn btn-small", testid: "transfer-agent-confirm", text: "Transfer",
        onclick: () => transfer(chat, { to_agent_id: transferAgent.value }) })),
    el("div", { class: "transfer-row" },
      el("label", { for: transferDepartment.id, text: "To a department" }), transferDepartment,
      el("button", { type: "button", class: "btn btn-small", testid: "transfer-department-confirm", text: "Transfer",
        onclick: () => transfer(chat, { department: transferDepartment.value.trim() }) })));

  const transferButton = el("button", {
    type: "button", class: "btn btn-small", testid: "transfer", "aria-expanded": "false", text: "Transfer",
    onclick: () => toggleTransfer(chat),
  });
  const endButton = el("button", {
    type: "button", class: "btn btn-small btn-danger", testid: "end-chat", text: "End chat",
    onclick: () => askToEnd(chat, true),
  });
  const endConfirm = el("div", { class: "end-confirm", testid: "end-confirm-bar", role: "group",
    "aria-label": "End this chat?", hidden: true },
  el("span", { class: "end-confirm-text", text: "End this chat for both of you?" }),
  el("button", { type: "button", class: "btn btn-small btn-danger", testid: "end-confirm", text: "End chat",
    onclick: () => endChat(chat) }),
  el("button", { type: "button", class: "btn btn-small", testid: "end-cancel", text: "Keep chatting",
    onclick: () => askToEnd(chat, false) }));
  const takeOverButton = el("button", {
    type: "button", class: "btn btn-small btn-primary", testid: "take-over", text: "Take over", hidden: true,
    onclick: () => takeOver(chat),
  });
  const stopWatchingButton = el("button", {
    type: "button", class: "btn btn-small", testid: "stop-watching", text: "Stop watching", hidden: true,
    onclick: () => removeChat(chat),
  });
  const closeButton = el("button", {
    type: "button", class: "btn btn-small", testid: "close-chat", text: "Close", hidden: true,
    onclick: () => removeChat(chat),
  });
  const back = el("button", {
    type: "button", class: "btn btn-ghost btn-small back-btn", text: "‹ Chats", onclick: () => setSection("queue"),
  });

  const list = el("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  dropZone(list, (files) => attachFiles(chat, files));   // files dropped on the conversation are sent
  const pane = el("section", { class: "chat-pane", testid: "chat-pane", dataset: { sessionId: id }, hidden: true },
    el("header", { class: "chat-header" },
      back,
      el("div", { class: "chat-heading" },
        el("h2", { class: "chat-title", testid: "chat-title" }),
        el("p", { class: "chat-sub muted" })),
      el("div", { class: "chat-actions" }, takeOverButton, transferButton, endButton, stopWatchingButton,
        closeButton)),
    endConfirm,
    el("p", { class: "watching-banner", testid: "watching-banner", hidden: true,
      text: "You are watching this chat. The customer sees nothing you write here: notes are for agents only." }),
    transferPanel,
    list,
    el("p", { class: "typing", testid: "typing", hidden: true, text: "Customer is typing…" }),
    el("p", { class: "chat-ended", testid: "chat-ended", role: "status", hidden: true }),
    el("p", { class: "chat-rating", testid: "chat-rating", hidden: true }),
    form);

  const dom = {
    tab, tabButton, pane, list, composer, noteToggle, cannedSelect, send, transferPanel, transferAgent,
    transferDepartment, transferButton, endButton, endConfirm, takeOverButton, stopWatchingButton, closeButton,
    watchingBanner: pane.querySelector(".watching-banner"),
    rating: pane.querySelector(".chat-rating"),
    tabLabel: tabButton.querySelector(".chat-tab-label"),
    tabMeta: tabButton.querySelector(".chat-tab-meta"),
    unread: tabButton.querySelector(".badge"),
    title: pane.querySelector(".chat-title"),
    sub: pane.querySelector(".chat-sub"),
    ended: pane.querySelector(".chat-ended"),
    typing: pane.querySelector(".typing"),
  };
  fillCanned(cannedSelect);
  return dom;
}

function applySession(chat, session) {
  chat.session = session;
  chat.customerReadSeq = Math.max(chat.customerReadSeq, session.customer_last_read_seq || 0);
  chat.readSeq = Math.max(chat.readSeq, session.agent_last_read_seq || 0);
  const { dom } = chat;
  dom.tabLabel.textContent = chatTitle(session);
  dom.title.textContent = chatTitle(session);
  const since = session.assigned_at || session.started_at;
  dom.sub.textContent = [departmentLabel(session.department), customerLabel(session),
    since ? `since ${formatTime(since)}` : ""].filter(Boolean).join(" · ");
  if (chat.watching && session.agent_id && String(session.agent_id) === String(state.userId)) {
    setWatching(chat, false);   // taken over
  }
  if (ENDED.has(session.status)) markEnded(chat);
  else if (chat.ended) reopen(chat);
  dom.tabMeta.textContent = `${chat.watching ? "Watching · " : ""}${departmentLabel(session.department)} · `
    + label(session.status);
  updateStatuses(chat);
  if (session.status === "active" && session.agent_id && String(session.agent_id) !== String(state.userId)
      && state.role === "agent") {
    removeChat(chat, `This chat is now with ${session.agent?.display_name || "another agent"}`);
  }
}

// ---------------------------------------------------------------- history and live messages

/** Catch up (chat:sync from the last contiguous seq, page by page while has_more). */
function sync(chat) {
  return chat.delivery.sync();
}

/** One page of history: a watched chat joins its room first (chat:watch answers like chat:sync
 * from 0, and the delivery drops what it has already). */
async function fetchPage(chat, afterSeq) {
  const data = chat.watching && !chat.joined
    ? await call("chat:watch", { session_id: chat.id })
    : await call("chat:sync", { session_id: chat.id, after_seq: afterSeq });
  if (chat.watching) chat.joined = true;
  return data;
}

/** Files first: the message waits in the outbox until they are uploaded. */
async function uploadFiles(entry) {
  for (const f of entry.files) {
    if (!f.id) f.id = (await uploadFile(f.file, (value) => showProgress(f, value))).id;
  }
}

/** New messages (or acknowledged outbox entries): the timeline, typing, unread and alerts. */
function messagesAdded(chat, added, live) {
  renderTimeline(chat);
  const fromCustomer = added.filter((m) => m.sender_type === "customer");
  if (fromCustomer.length) showPeerTyping(chat, false);
  if (isSeen(chat)) markSeen(chat);
  else updateUnread(chat);
  if (live && fromCustomer.length && !isSeen(chat) && !chat.watching) {
    alertChat(chat, "message", fromCustomer[fromCustomer.length - 1].message);
  }
}

export function onMessage(message) {
  const chat = chats.get(message.session_id);
  if (chat) chat.delivery.receive([message], { live: true });
}

/** chat:resync: live pushes of these chats may have been missed (the server's fan-out was
 * interrupted, or the other party's replica died); fetch what is new. */
export function onResync({ session_ids: ids = [] } = {}) {
  for (const chat of chats.values()) chat.delivery.resync(ids);
}

export function onNote(note) {
  const chat = chats.get(note.session_id);
  if (!chat || chat.notes.has(note.id)) return;
  chat.notes.set(note.id, note);
  renderTimeline(chat);
}

export function onTyping({ session_id: id, sender_type: sender, typing }) {
  const chat = chats.get(id);
  if (chat && sender !== "agent") showPeerTyping(chat, typing);
}

export function onRead({ session_id: id, reader_type: reader, up_to_seq: upTo }) {
  const chat = chats.get(id);
  if (!chat) return;
  if (reader === "customer") {
    chat.customerReadSeq = Math.max(chat.customerReadSeq, upTo);
    updateStatuses(chat);
  } else {   // this agent, in another tab
    chat.readSeq = Math.max(chat.readSeq, upTo);
    chat.sentReadSeq = Math.max(chat.sentReadSeq, upTo);
    updateUnread(chat);
  }
}

export function onAssigned({ session }) {
  if (session.agent_id && String(session.agent_id) !== String(state.userId)) return;
  openChat(session, { alert: state.accepting.has(session.id) ? null : "assigned" });
}

export function onEnded({ session, reason }) {
  const chat = chats.get(session.id);
  if (!chat) return;
  const wasOpen = !chat.ended;
  chat.endReason = reason;
  applySession(chat, session);
  if (wasOpen && reason !== "agent" && !isSeen(chat)) {
    toast(END_TEXT[reason] || "The chat has ended.", {
      title: chatTitle(session), onOpen: () => focusChat(chat.id, { reveal: true }),
    });
  }
}

export function onTransferred({ session, from_agent_id: from, to_agent_id: to }) {
  const me = String(state.userId);
  if (to && String(to) === me) {
    openChat(session, { alert: "transferred" });
    return;
  }
  const chat = chats.get(session.id);
  if (chat && (!from || String(from) === me || state.role === "agent")) {
    const who = to ? agentName(to) : "the queue";
    removeChat(chat, to ? `Transferred to ${who}` : "This chat went back to the queue");
  }
}

/** After a reconnect: fetch what was missed in every chat, then resend what was not acknowledged. */
export async function resumeAll(mine) {
  for (const chat of chats.values()) chat.joined = false;   // a new socket is in no watched room yet
  for (const session of mine) openChat(session);
  await Promise.all(openChats().map(async (chat) => {
    await sync(chat);
    chat.delivery.flush();
  }));
}

// ---------------------------------------------------------------- the timeline

function timelineItems(chat) {
  const messages = chat.delivery.ordered();
  const notes = [...chat.notes.values()].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
  const items = [];
  let n = 0;
  for (const message of messages) {
    while (n < notes.length && Date.parse(notes[n].created_at) < Date.parse(message.created_at)) {
      items.push({ key: `n:${notes[n].id}`, note: notes[n] });
      n += 1;
    }
    items.push({ key: `m:${message.seq}`, message });
  }
  for (; n < notes.length; n++) items.push({ key: `n:${notes[n].id}`, note: notes[n] });
  for (const entry of chat.delivery.outbox) items.push({ key: `o:${entry.client_msg_id}`, pending: entry });
  return items;
}

function renderTimeline(chat) {
  const list = chat.dom.list;
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const items = timelineItems(chat);
  const keys = new Set(items.map((item) => item.key));
  for (const key of chat.nodes.keys()) if (!keys.has(key)) chat.nodes.delete(key);
  const nodes = items.map((item) => {
    let node = chat.nodes.get(item.key);
    if (!node) {
      if (item.message) node = buildMessage(item.message);
      else if (item.note) node = buildNote(item.note);
      else node = buildPending(chat, item.pending);
      chat.nodes.set(item.key, node);
    }
    return node;
  });
  list.replaceChildren(...nodes);
  updateStatuses(chat);
  if (atEnd || !chat.delivery.loaded) scrollToEnd(chat);
}

function scrollToEnd(chat) {
  const list = chat.dom.list;
  list.scrollTop = list.scrollHeight;
}

function senderLabel(message) {
  if (message.sender_type === "customer") return "Customer";
  if (message.sender_type === "agent") return agentName(message.sender_id);
  return message.sender_type === "bot" ? "Assistant" : "System";
}

function buildMessage(message) {
  const mine = message.sender_type === "agent";
  return el("div", {
    class: `msg msg-${message.sender_type}`, testid: "message",
    dataset: { seq: message.seq, sender: message.sender_type, clientMsgId: message.client_msg_id || "" },
  },
  el("div", { class: "msg-bubble" }, messageBody(message),
    attachmentList(message.attachments)),
  el("div", { class: "msg-meta" },
    el("span", { class: "msg-sender", text: senderLabel(message) }),
    el("time", { datetime: message.created_at, text: formatTime(message.created_at) }),
    mine ? el("span", { class: "msg-status", testid: "message-status", text: "Sent" }) : null));
}

function buildPending(chat, entry) {
  const failed = entry.state === "failed";
  return el("div", {
    class: `msg msg-agent is-${entry.state}`, testid: "message",
    dataset: { sender: "agent", clientMsgId: entry.client_msg_id, status: entry.state },
  },
  el("div", { class: "msg-bubble" }, el("p", { class: "msg-text", testid: "message-text", text: entry.message }),
    pendingList(entry.files, { failed })),
  el("div", { class: "msg-meta" },
    el("span", { class: "msg-sender", text: "You" }),
    el("span", { class: "msg-status", testid: "message-status", text: failed ? "Not sent" : "Sending…",
      title: failed ? entry.error || "" : "" }),
    failed && entry.error ? el("span", { class: "msg-error", testid: "message-error", role: "alert", text: entry.error }) : null,
    failed && !chat.ended && !entry.final ? el("button", { type: "button", class: "link-btn", testid: "retry", text: "Retry",
      onclick: () => retry(chat, entry) }) : null));
}

function buildNote(note) {
  return el("div", { class: "note", testid: "note", dataset: { noteId: note.id } },
    el("div", { class: "note-head" },
      el("span", { class: "note-tag", text: "Internal note" }),
      el("span", { text: `${agentName(note.sender_id)} · ${formatTime(note.created_at)}` })),
    el("p", { class: "msg-text", testid: "message-text", text: note.message }));
}

/** "Sent" / "Seen" on the agent's messages, from the customer's read receipts. */
function updateStatuses(chat) {
  for (const [key, node] of chat.nodes) {
    if (!key.startsWith("m:") || node.dataset.sender !== "agent") continue;
    const seen = Number(node.dataset.seq) <= chat.customerReadSeq;
    const status = node.querySelector(".msg-status");
    status.textContent = seen ? "Seen" : "Sent";
    status.classList.toggle("is-seen", seen);
  }
}

// ---------------------------------------------------------------- unread and alerts

function isSeen(chat) {
  return chat.id === focusedId && document.visibilityState === "visible" && chatsOnScreen();
}

function unreadCount(chat) {
  let count = 0;
  for (const message of chat.delivery.messages.values()) {
    if (message.sender_type === "customer" && message.seq > chat.readSeq) count += 1;
  }
  return count;
}

function updateUnread(chat) {
  const count = unreadCount(chat);
  chat.dom.unread.hidden = count === 0;
  chat.dom.unread.textContent = String(count);
  chat.dom.unread.setAttribute("aria-label", `${count} unread`);
  updateTotals();
}

function updateTotals() {
  const total = [...chats.values()].reduce((sum, chat) => sum + unreadCount(chat), 0);
  const badge = document.querySelector('[data-testid="nav-unread"]');
  badge.hidden = total === 0;
  badge.textContent = String(total);
  setUnreadTitle(total);
}

/** The agent sees the chat: clear its unread count and tell the customer (chat:read). */
function markSeen(chat) {
  if (!chat || !isSeen(chat)) return;
  const newest = chat.delivery.syncedSeq;
  chat.readSeq = Math.max(chat.readSeq, newest);
  updateUnread(chat);
  // a supervisor watching is not the reader the customer's "Seen" means
  if (newest > chat.sentReadSeq && !chat.ended && !chat.watching && state.live?.connected()) {
    const previous = chat.sentReadSeq;
    chat.sentReadSeq = newest;
    call("chat:read", { session_id: chat.id, up_to_seq: newest }).catch(() => {
      chat.sentReadSeq = previous;
    });
  }
}

function alertChat(chat, kind, text) {
  const title = kind === "message" ? `New message · ${chatTitle(chat.session)}`
    : kind === "transferred" ? "Chat transferred to you" : "New chat assigned to you";
  const body = kind === "message" ? text : chatTitle(chat.session);
  const open = () => focusChat(chat.id, { reveal: true });
  toast(body, { title, onOpen: open });
  desktopNotify(title, body, open);
}

function showPeerTyping(chat, typing) {
  clearTimeout(chat.peerTypingTimer);
  chat.dom.typing.hidden = !typing;
  if (typing) chat.peerTypingTimer = setTimeout(() => { chat.dom.typing.hidden = true; }, PEER_TYPING_MS);
}

// ---------------------------------------------------------------- composing and sending

function onComposerKey(chat, event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit(chat);
  }
}

function onComposerInput(chat) {
  if (chat.noteMode || chat.ended) return;
  const now = Date.now();
  if (chat.dom.composer.value.trim() && (!chat.typingSent || now - chat.typingSentAt > TYPING_REPEAT_MS)) {
    chat.typingSent = true;
    chat.typingSentAt = now;
    call("chat:typing", { session_id: chat.id, typing: true }).catch(() => {});
  }
  clearTimeout(chat.typingTimer);
  chat.typingTimer = setTimeout(() => stopTyping(chat), TYPING_IDLE_MS);
}

function stopTyping(chat) {
  clearTimeout(chat.typingTimer);
  if (!chat.typingSent) return;
  chat.typingSent = false;
  call("chat:typing", { session_id: chat.id, typing: false }).catch(() => {});
}

function setNoteMode(chat, noteMode, { focus = true } = {}) {
  if (noteMode) stopTyping(chat);
  chat.noteMode = noteMode;
  const { dom } = chat;
  dom.noteToggle.setAttribute("aria-pressed", String(noteMode));
  dom.pane.classList.toggle("is-note-mode", noteMode);
  dom.composer.placeholder = noteMode ? "Internal note: only agents see this…" : "Write a reply…";
  dom.send.textContent = noteMode ? "Add note" : "Send";
  if (focus) dom.composer.focus();
}

function submit(chat) {
  const text = chat.dom.composer.value.trim();
  if (!text || chat.ended) return;
  if (chat.noteMode) {
    addNote(chat, text);
    return;
  }
  chat.dom.composer.value = "";
  stopTyping(chat);
  chat.delivery.enqueue({ message: text });
  renderTimeline(chat);
  scrollToEnd(chat);
}

function retry(chat, entry) {
  chat.delivery.retry(entry.client_msg_id);
}

/** Each attached file becomes its own message in the outbox: uploaded when its turn comes. */
function attachFiles(chat, files) {
  if (chat.ended) return;
  for (const file of files) {
    chat.delivery.enqueue({ message: "", files: [{ file, name: file.name || "pasted-image.png", id: null, progress: 0 }] });
  }
  renderTimeline(chat);
  scrollToEnd(chat);
}

function refreshPending(chat, entry) {
  const key = `o:${entry.client_msg_id}`;
  if (!chat.nodes.has(key)) return;
  const node = buildPending(chat, entry);
  chat.nodes.get(key).replaceWith(node);
  chat.nodes.set(key, node);
}

async function addNote(chat, text) {
  const { composer, send } = chat.dom;
  composer.value = "";
  send.disabled = true;
  try {
    const data = await call("chat:note", { session_id: chat.id, message: text });
    chat.notes.set(data.note.id, data.note);
    renderTimeline(chat);
    scrollToEnd(chat);
  } catch (error) {
    if (!composer.value) composer.value = text;
    toast(error.message, { title: "The note was not saved", kind: "error" });
  } finally {
    send.disabled = false;
  }
}

export function insertIntoComposer(text) {
  const chat = focused();
  if (!chat || chat.ended) {
    toast("Open an active chat first", { kind: "error" });
    return false;
  }
  const box = chat.dom.composer;
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? box.value.length;
  const before = box.value.slice(0, start);
  const spacer = before && !/\s$/.test(before) ? " " : "";
  box.value = `${before}${spacer}${text}${box.value.slice(end)}`;
  const caret = before.length + spacer.length + text.length;
  box.focus();
  box.setSelectionRange(caret, caret);
  if (isPhone()) setSection("chat");
  return true;
}

// ---------------------------------------------------------------- canned responses

export function setCanned(items) {
  canned = items;
  for (const chat of chats.values()) fillCanned(chat.dom.cannedSelect);
}

function fillCanned(select) {
  select.hidden = canned.length === 0;
  select.replaceChildren(el("option", { value: "", text: "Canned response…" }),
    ...canned.map((item) => el("option", { value: item.id, text: `${item.shortcut} · ${item.title}` })));
}

function insertCanned(chat, select) {
  const item = canned.find((c) => c.id === select.value);
  select.value = "";
  if (item) insertIntoComposer(item.body);
}

// ---------------------------------------------------------------- transfer and end

function toggleTransfer(chat) {
  const { transferPanel, transferButton, transferAgent } = chat.dom;
  const open = transferPanel.hidden;
  transferPanel.hidden = !open;
  transferButton.setAttribute("aria-expanded", String(open));
  if (!open) return;
  fillTransferAgents(chat);
  transferAgent.focus();
}

/** The other agents (of the department, or all for a supervisor); those who cannot take it are disabled. */
function fillTransferAgents(chat) {
  const select = chat.dom.transferAgent;
  const chosen = select.value;
  const others = [...state.roster.values()]
    .filter((a) => String(a.id) !== String(state.userId))
    .filter((a) => !a.department || a.department === chat.session.department)
    .sort((a, b) => (a.display_name || "").localeCompare(b.display_name || ""));
  select.replaceChildren(...(others.length ? others.map((agent) => {
    const full = agent.active_chats >= agent.capacity;
    const text = `${agent.display_name} · ${label(agent.status)} · ${agent.active_chats}/${agent.capacity}`;
    return el("option", { value: agent.id, text, disabled: agent.status === "offline" || full });
  }) : [el("option", { value: "", text: "No other agents", disabled: true })]));
  const keep = [...select.options].find((o) => o.value === chosen && !o.disabled);
  const firstFree = keep || [...select.options].find((o) => !o.disabled);
  if (firstFree) select.value = firstFree.value;
}

async function transfer(chat, target) {
  if (!target.to_agent_id && !target.department) {
    toast("Choose an agent or a department", { kind: "error" });
    return;
  }
  const who = target.to_agent_id ? agentName(target.to_agent_id) : departmentLabel(target.department);
  try {
    await call("chat:transfer", { session_id: chat.id, ...target });
    removeChat(chat, `Transferred to ${who}`);
  } catch (error) {
    toast(error.message, { title: "Transfer failed", kind: "error" });
  }
}

/** "End chat" asks first: ending is for both parties and cannot be undone. */
function askToEnd(chat, asking) {
  chat.dom.endConfirm.hidden = !asking;
  chat.dom.endButton.hidden = asking;
  if (asking) chat.dom.endConfirm.querySelector("[data-testid=end-cancel]").focus();
  else chat.dom.endButton.focus();
}

async function endChat(chat) {
  chat.dom.endConfirm.hidden = true;
  chat.dom.endButton.hidden = false;
  chat.dom.endButton.disabled = true;
  try {
    const data = await call("chat:end", { session_id: chat.id });
    chat.endReason = "agent";
    applySession(chat, data.session);
  } catch (error) {
    chat.dom.endButton.disabled = false;
    toast(error.message, { title: "Could not end the chat", kind: "error" });
  }
}

const END_TEXT = {
  agent: "The chat has ended.", customer: "The customer ended the chat.",
  inactivity: "The chat ended after a period of inactivity.", queue_timeout: "The chat timed out in the queue.",
};

function markEnded(chat) {
  const { dom } = chat;
  chat.ended = true;
  stopTyping(chat);
  showPeerTyping(chat, false);
  dom.ended.hidden = false;
  dom.ended.textContent = END_TEXT[chat.endReason || chat.session.end_reason] || "The chat has ended.";
  for (const control of [dom.composer, dom.send, dom.noteToggle, dom.cannedSelect, dom.transferButton, dom.endButton]) {
    control.disabled = true;
  }
  dom.transferPanel.hidden = true;
  dom.endConfirm.hidden = true;
  dom.takeOverButton.hidden = true;
  loadRating(chat);
  chat.delivery.failAll("The chat has ended");   // what never reached the server stays unsent
  dom.endButton.hidden = true;
  dom.transferButton.hidden = true;
  dom.stopWatchingButton.hidden = true;
  dom.closeButton.hidden = false;
  dom.tab.classList.add("is-ended");
}

// ---------------------------------------------------------------- ratings

/** The customer's rating of an ended chat (kept from chat:rated, else read once over REST). */
async function loadRating(chat) {
  if (chat.rated || !chat.session.satisfaction_rating || chat.ratingRequested) {
    showRating(chat);
    return;
  }
  chat.ratingRequested = true;
  try {
    const page = await api("/api/v1/feedback", { query: { session_id: chat.id, limit: 1 } });
    const [feedback] = page.items;
    if (feedback) chat.rated = { rating: feedback.rating, comment: feedback.comment };
  } catch {
    chat.rated = { rating: chat.session.satisfaction_rating, comment: null };
  }
  showRating(chat);
}

function showRating(chat) {
  const node = chat.dom.rating;
  node.hidden = !chat.rated;
  if (!chat.rated) return;
  node.replaceChildren(ratingNodes(chat.rated));
}

export function onRated({ session_id: id, rating, comment }) {
  const chat = chats.get(id);
  if (!chat) return;
  chat.rated = { rating, comment };
  showRating(chat);
  if (!isSeen(chat)) toast(comment || `Rated ${rating}/5`, { title: `Rated ${rating}/5 · ${chatTitle(chat.session)}` });
}

// ---------------------------------------------------------------- supervisors watching

function setWatching(chat, watching) {
  const { dom } = chat;
  chat.watching = watching;
  dom.pane.classList.toggle("is-watching", watching);
  dom.watchingBanner.hidden = !watching;
  dom.takeOverButton.hidden = !watching || !state.me || chat.ended;
  dom.stopWatchingButton.hidden = !watching || chat.ended;
  dom.transferButton.hidden = watching || chat.ended;
  dom.endButton.hidden = watching || chat.ended;
  dom.noteToggle.hidden = watching;   // watching, everything written is a note
  setNoteMode(chat, watching, { focus: false });
  dom.tab.classList.toggle("is-watching", watching);
}

/** The supervisor becomes the chat's agent: a transfer to themselves. */
async function takeOver(chat) {
  chat.dom.takeOverButton.disabled = true;
  try {
    const data = await call("chat:transfer", { session_id: chat.id, to_agent_id: state.userId });
    setWatching(chat, false);
    applySession(chat, data.session);
    toast("The customer now chats with you", { title: chatTitle(chat.session) });
  } catch (error) {
    toast(error.message, { title: "Could not take the chat over", kind: "error" });
  } finally {
    chat.dom.takeOverButton.disabled = false;
  }
}

function reopen(chat) {
  const { dom } = chat;
  chat.ended = false;
  dom.ended.hidden = true;
  for (const control of [dom.composer, dom.send, dom.noteToggle, dom.cannedSelect, dom.transferButton, dom.endButton]) {
    control.disabled = false;
  }
  dom.endButton.hidden = false;
  dom.transferButton.hidden = false;
  dom.closeButton.hidden = true;
  dom.tab.classList.remove("is-ended");
}
