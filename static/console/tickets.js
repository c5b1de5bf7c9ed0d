// Tickets: a filtered, paged list and one ticket (messages with internal notes, reply or note,
// status change along the allowed transitions, escalation, history), kept current by the
// ticket:* socket pushes.

import { attachControls, attachmentList, pendingList, showProgress, uploadFile } from "./attachments.js";
import { toast } from "./alerts.js";
import { renderTicketBookings, ticketBookingsSection } from "./bookings.js";
import { api, el, formatDateTime, label, messageBody, ratingNodes } from "./lib.js";
import { emit, on, setSection, state } from "./state.js";

const PAGE = 20;

const list = { filters: {}, offset: 0, total: 0, items: [], loaded: false, request: 0 };
let current = null;        // the open ticket
let detailRequest = 0;
let reloadTimer = null;

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

export function initTickets() {
  const form = document.getElementById("ticket-filters");
  let typing = null;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", () => applyFilters());
  form.addEventListener("input", (event) => {
    if (event.target.tagName !== "INPUT") return;
    clearTimeout(typing);
    typing = setTimeout(applyFilters, 300);
  });
  $("tickets-prev").addEventListener("click", () => page(-1));
  $("tickets-next").addEventListener("click", () => page(1));
  on("section", (section) => {
    if (section === "tickets" && !list.loaded) loadList();
  });
}

function applyFilters() {
  const data = new FormData(document.getElementById("ticket-filters"));
  const filters = Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v).trim()]).filter(([, v]) => v));
  if (JSON.stringify(filters) === JSON.stringify(list.filters)) return;
  list.filters = filters;
  list.offset = 0;
  loadList();
}

function page(direction) {
  const offset = list.offset + direction * PAGE;
  if (offset < 0 || offset >= Math.max(list.total, 1)) return;
  list.offset = offset;
  loadList();
}

async function loadList() {
  const mine = ++list.request;
  list.loaded = true;
  try {
    const result = await api("/api/v1/tickets", {
      query: { ...list.filters, limit: PAGE, offset: list.offset, sort: "-updated_at" },
    });
    if (mine !== list.request) return;
    list.items = result.items;
    list.total = result.total;
    renderList();
  } catch (error) {
    if (mine === list.request) toast(error.message, { title: "Could not load tickets", kind: "error" });
  }
}

function renderList() {
  const rows = list.items.map((ticket) => el("tr", {
    class: "ticket-row", testid: "ticket-row", dataset: { ticketId: ticket.id },
    "aria-selected": current && current.id === ticket.id ? "true" : "false",
    // the whole row opens the ticket; its button is the keyboard's way in
    onclick: (event) => { if (!event.target.closest("button")) showTicket(ticket.id); },
  },
  el("td", {},
    el("button", { type: "button", class: "row-link", onclick: () => showTicket(ticket.id) },
      el("span", { class: "mono muted", text: ticket.ticket_number }),
      el("span", { class: "row-subject", text: ticket.subject }))),
  el("td", {}, el("span", {
    class: `pill pill-${ticket.status}`, testid: "ticket-row-status", text: label(ticket.status),
  })),
  el("td", {}, el("span", { class: `pill prio-${ticket.priority}`, text: label(ticket.priority) })),
  el("td", { class: "col-updated muted", text: formatDateTime(ticket.updated_at) })));
  document.getElementById("ticket-rows").replaceChildren(...rows);
  $("tickets-empty").hidden = list.items.length > 0;
  const first = list.total ? list.offset + 1 : 0;
  $("tickets-range").textContent = `${first}–${list.offset + list.items.length} of ${list.total}`;
  $("tickets-prev").disabled = list.offset === 0;
  $("tickets-next").disabled = list.offset + list.items.length >= list.total;
}

/** A ticket:* push: update the list and the open ticket, no reload needed. */
export function onTicketPush(event, { ticket }) {
  emit("ticket", ticket);
  const index = list.items.findIndex((t) => t.id === ticket.id);
  if (index >= 0) {
    list.items[index] = ticket;
    renderList();
  } else if (list.loaded && (event === "ticket:created" || event === "ticket:assigned")) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(loadList, 250);
  }
  if (current && current.id === ticket.id) {
    current = ticket;
    renderHead();
    loadThread(ticket.id);
  }
}

// ---------------------------------------------------------------- one ticket

export async function showTicket(id) {
  setSection("tickets");
  if (!list.loaded) loadList();
  const mine = ++detailRequest;
  const pane = document.getElementById("ticket-detail");
  document.getElementById("tickets").dataset.detail = "open";
  pane.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  try {
    const ticket = await api(`/api/v1/tickets/${id}`);
    if (mine !== detailRequest) return;
    current = ticket;
    pane.replaceChildren(buildDetail());
    renderHead();
    renderList();
    loadRating(id);
    await loadThread(id);
    pane.querySelector("[data-testid=ticket-subject]").focus();
  } catch (error) {
    if (mine === detailRequest) pane.replaceChildren(el("p", { class: "empty", text: error.message }));
  }
}

function closeDetail() {
  current = null;
  document.getElementById("tickets").dataset.detail = "closed";
  document.getElementById("ticket-detail").replaceChildren(el("p", { class: "empty", text: "Select a ticket." }));
  renderList();
}

function buildDetail() {
  const reply = el("textarea", { id: "ticket-reply", testid: "ticket-reply", rows: 3, maxlength: 20000 });
  const internal = el("input", { type: "checkbox", id: "ticket-internal", testid: "ticket-internal",
    onchange: (e) => {
      $("ticket-send").textContent = e.target.checked ? "Add internal note" : "Send reply";
      replyForm.classList.toggle("is-note-mode", e.target.checked);
    } });
  const replyFiles = el("div", { id: "ticket-reply-files", testid: "ticket-reply-files" });
  const replyForm = el("form", { class: "ticket-reply", onsubmit: (e) => { e.preventDefault(); sendReply(); } },
    el("label", { for: "ticket-reply", class: "field-label", text: "Reply" }),
    reply,
    replyFiles,
    el("div", { class: "composer-bar" },
      attachControls(attachToReply, { input: reply, zones: [] }),
      el("label", { class: "check" }, internal, " Internal note (agents only)"),
      el("button", { type: "submit", class: "btn btn-primary", testid: "ticket-send", text: "Send reply" })));
  return el("article", { class: "ticket-view", testid: "ticket-view" },
    el("header", { class: "ticket-head" },
      el("button", { type: "button", class: "btn btn-ghost btn-small back-btn", testid: "ticket-back",
        text: "‹ Tickets", onclick: closeDetail }),
      el("p", { class: "mono muted", testid: "ticket-number" }),
      el("h2", { class: "ticket-subject", testid: "ticket-subject", tabindex: "-1" }),
      el("div", { class: "ticket-pills" },
        el("span", { class: "pill", testid: "ticket-status" }),
        el("span", { class: "pill", testid: "ticket-priority" }),
        el("span", { class: "pill pill-muted", testid: "ticket-escalation" })),
      el("dl", { class: "facts", testid: "ticket-facts" })),
    el("div", { class: "ticket-actions" },
      el("label", { for: "ticket-status-select", text: "Status" }),
      el("select", { id: "ticket-status-select", testid: "ticket-status-select" }),
      el("button", { type: "button", class: "btn btn-small", testid: "ticket-status-apply", text: "Change status",
        onclick: changeStatus }),
      el("button", { type: "button", class: "btn btn-small btn-warning", testid: "ticket-escalate", text: "Escalate",
        onclick: escalate })),
    el("p", { class: "form-error", testid: "ticket-error", role: "alert", hidden: true }),
    el("p", { class: "ticket-rating", testid: "ticket-rating", hidden: true }),
    el("section", { class: "ticket-section" },
      el("h3", { class: "section-title", text: "Description" }),
      el("p", { class: "ticket-description", testid: "ticket-description" })),
    ticketBookingsSection(),
    el("section", { class: "ticket-section" },
      el("h3", { class: "section-title", text: "Conversation" }),
      el("ol", { class: "ticket-thread", testid: "ticket-thread", "aria-live": "polite" })),
    replyForm,
    el("section", { class: "ticket-section" },
      el("h3", { class: "section-title", text: "History" }),
      el("ol", { class: "history", testid: "ticket-history" })));
}

function renderHead() {
  const t = current;
  if (!t || !$("ticket-view")) return;
  $("ticket-number").textContent = `${t.ticket_number} · ${t.channel}`;
  $("ticket-subject").textContent = t.subject;
  setPill($("ticket-status"), `pill-${t.status}`, label(t.status));
  setPill($("ticket-priority"), `prio-${t.priority}`, `${label(t.priority)} priority`);
  $("ticket-escalation").textContent = `Escalation level ${t.escalation_level}`;
  $("ticket-description").textContent = t.description;
  const facts = [
    ["Customer", [t.customer_name, t.customer_email].filter(Boolean).join(" · ") || "—"],
    ["Category", t.category], ["Created", formatDateTime(t.created_at)], ["Updated", formatDateTime(t.updated_at)],
    ["Resolution due", t.resolution_due_at ? formatDateTime(t.resolution_due_at) : "—"],
  ];
  $("ticket-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const select = $("ticket-status-select");
  select.replaceChildren(
    el("option", { value: "", text: `${label(t.status)} (current)` }),
    // The server lists where this ticket may go next (allowed_transitions): no copy of its rules here.
    ...(t.allowed_transitions || []).map((s) => el("option", { value: s, text: label(s) })));
  $("ticket-escalate").disabled = t.status === "resolved" || t.status === "closed";
  $("ticket-send").disabled = t.status === "closed";
  renderTicketBookings(t, act);
}

/** The customer's rating, once they gave one (resolved and closed tickets can be rated). */
async function loadRating(id) {
  try {
    const page = await api("/api/v1/feedback", { query: { ticket_id: id, limit: 1 } });
    const [feedback] = page.items;
    if (feedback && current && current.id === id) showRating(feedback);
  } catch {
    // no rating shown; the ticket itself is what matters here
  }
}

function showRating({ rating, comment }) {
  const node = $("ticket-rating");
  if (!node) return;
  node.hidden = false;
  node.replaceChildren(el("span", { class: "section-title", text: "Customer rating " }), ratingNodes({ rating, comment }));
}

/** ticket:rated: the customer just rated a ticket of this agent. */
export function onTicketRated({ ticket_id: id, rating, comment }) {
  if (current && current.id === id) showRating({ rating, comment });
  else toast(comment || `Rated ${rating}/5`, { title: `Ticket rated ${rating}/5`, onOpen: () => showTicket(id) });
}

function setPill(node, cls, text) {
  node.className = `pill ${cls}`;
  node.textContent = text;
}

async function loadThread(id) {
  try {
    const [messages, history] = await Promise.all([
      api(`/api/v1/tickets/${id}/messages`, { query: { limit: 100 } }),
      api(`/api/v1/tickets/${id}/history`),
    ]);
    if (!current || current.id !== id || !$("ticket-view")) return;
    $("ticket-thread").replaceChildren(...(messages.items.length ? messages.items.map(ticketMessage)
      : [el("li", { class: "empty", text: "No messages yet." })]));
    $("ticket-history").replaceChildren(...history.items.map(historyItem));
  } catch (error) {
    showError(error.message);
  }
}

function personLabel(senderType, senderId) {
  if (senderType === "customer") return "Customer";
  if (senderId && String(senderId) === String(state.userId)) return "You";
  if (senderType === "agent") return state.roster.get(String(senderId))?.display_name || "Agent";
  return "System";
}

function ticketMessage(m) {
  return el("li", {
    class: `tmsg tmsg-${m.sender_type} ${m.is_internal ? "is-internal" : ""}`, testid: "ticket-message",
    dataset: { internal: String(m.is_internal), sender: m.sender_type },
  },
  el("div", { class: "tmsg-head" },
    m.is_internal ? el("span", { class: "note-tag", text: "Internal note" }) : null,
    el("strong", { text: personLabel(m.sender_type, m.sender_id) }),
    el("span", { class: "muted", text: formatDateTime(m.created_at) })),
  messageBody(m),
  attachmentList(m.attachments));
}

// Files of the reply being written: uploaded at once, sent with the reply.
let replyUploads = [];

// Each file's `done` settles when its upload has (one upload at a time, in the order given).
async function attachToReply(files) {
  const added = Array.from(files, (file) => ({ file, name: file.name || "pasted-image.png", id: null, progress: 0 }));
  replyUploads.push(...added);
  renderReplyFiles();
  let previous = Promise.resolve();
  for (const f of added) {
    f.done = previous.then(() => uploadFile(f.file, (value) => showProgress(f, value))).then(
      (uploaded) => { f.id = uploaded.id; },
      (error) => { replyUploads = replyUploads.filter((x) => x !== f); showError(error.message); },
    ).finally(renderReplyFiles);
    previous = f.done;
  }
  await previous;
}

function renderReplyFiles() {
  const box = $("ticket-reply-files");
  if (!box) return;
  box.replaceChildren(...replyUploads.map((f) => el("span", { class: "reply-file", testid: "reply-file" },
    f.id ? `📎 ${f.name}` : null,
    f.id ? el("button", { type: "button", class: "link-btn", "aria-label": `Remove ${f.name}`, text: "×",
      onclick: () => { replyUploads = replyUploads.filter((x) => x !== f); renderReplyFiles(); } }) : null,
    f.id ? null : pendingList([f]))));
}

function historyText(entry) {
  const p = entry.payload || {};
  switch (entry.type) {
    case "ticket.created":
      return "Ticket created";
    case "ticket.status_changed":
      return `Status: ${label(p.from)} → ${label(p.to)}${p.reason ? ` (${p.reason})` : ""}`;
    case "ticket.assigned":
      return p.agent_id ? `Assigned to ${personLabel("agent", p.agent_id)}` : "Unassigned";
    case "ticket.escalated":
      return `Escalated to level ${p.escalation_level}`;
    case "ticket.message_added":
      return p.is_internal ? "Internal note added" : `Reply from the ${p.sender_type}`;
    case "ticket.updated":
      if ("booking_id" in p) return p.booking_id ? `Booking ${p.booking_reference || p.booking_id} linked` : "Booking unlinked";
      return `Updated: ${Object.keys(p.changes || {}).map((f) => f.replace(/_/g, " ")).join(", ")}`;
    default:
      return entry.type;
  }
}

function historyItem(entry) {
  const id = entry.actor_id && String(entry.actor_id);
  const actor = id === String(state.userId) ? "you" : state.roster.get(id)?.display_name;   // staff we know
  const by = actor ? ` · ${actor}` : "";
  return el("li", { class: "history-item", testid: "history-item", dataset: { type: entry.type } },
    el("span", { text: historyText(entry) }),
    el("span", { class: "muted", text: `${formatDateTime(entry.created_at)}${by}` }));
}

function showError(message) {
  const node = $("ticket-error");
  if (!node) return;
  node.hidden = !message;
  node.textContent = message || "";
}

async function act(button, work) {
  button.disabled = true;
  showError("");
  try {
    const ticket = await work();
    if (ticket) {
      current = ticket;
      const index = list.items.findIndex((t) => t.id === ticket.id);
      if (index >= 0) list.items[index] = ticket;
      renderList();
      renderHead();
    }
    await loadThread(current.id);
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
    renderHead();
  }
}

function sendReply() {
  const box = $("ticket-reply");
  const text = box.value.trim();
  if (!text && !replyUploads.length) return;
  const internal = $("ticket-internal").checked;
  act($("ticket-send"), async () => {
    await Promise.all(replyUploads.map((f) => f.done));   // Send while a file uploads: it goes along
    const ready = replyUploads.filter((f) => f.id);
    if (!text && !ready.length) return null;
    const body = { message: text, is_internal: internal };
    if (ready.length) body.attachments = ready.map((f) => f.id);
    await api(`/api/v1/tickets/${current.id}/messages`, { method: "POST", body });
    box.value = "";
    replyUploads = replyUploads.filter((f) => !ready.includes(f));
    renderReplyFiles();
    return api(`/api/v1/tickets/${current.id}`);
  });
}

function changeStatus() {
  const status = $("ticket-status-select").value;
  if (!status) return;
  act($("ticket-status-apply"), () =>
    api(`/api/v1/tickets/${current.id}/status`, { method: "PATCH", body: { status } }));
}

function escalate() {
  act($("ticket-escalate"), async () => {
    const result = await api(`/api/v1/tickets/${current.id}/escalate`, { method: "POST", body: {} });
    return result.ticket;
  });
}
