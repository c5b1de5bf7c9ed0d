// The live queue: waiting chats per department with their waiting time (ticking every second),
// fed by queue:snapshot on every (re)connection and queue:updated pushes; "Accept" takes one.

import { toast } from "./alerts.js";
import { customerLabel, el, formatDuration, secondsSince } from "./lib.js";
import { departmentLabel, emit, isSupervisor, on, rememberDepartment, state } from "./state.js";

const LONG_WAIT_SECONDS = 120;
const nodes = new Map();   // session id -> queue item element
let onAccepted = () => {};

export function initQueue({ accepted }) {
  onAccepted = accepted;
  setInterval(tickWaits, 1000);
  on("departments", renderQueue);   // display names arrived
}

/** The queued part of a queue:snapshot: every department it covers is replaced. */
export function applySnapshotQueue(queued) {
  const scope = new Map();
  if (state.me && !isSupervisor()) scope.set(state.me.department, []);
  for (const session of queued) {
    if (!scope.has(session.department)) scope.set(session.department, []);
    scope.get(session.department).push(session);
  }
  if (!isSupervisor()) state.queues.clear();
  for (const [department, sessions] of scope) state.queues.set(department, sessions);
  if (isSupervisor()) {   // departments absent from a full snapshot have nobody waiting
    for (const department of state.queues.keys()) if (!scope.has(department)) state.queues.set(department, []);
  }
  renderQueue();
}

export function onQueueUpdated({ department, queued }) {
  state.queues.set(department, queued);
  renderQueue();
}

function dropFromQueue(sessionId) {
  for (const [department, sessions] of state.queues) {
    state.queues.set(department, sessions.filter((s) => s.id !== sessionId));
  }
  renderQueue();
}

function orderedDepartments() {
  const own = state.me?.department;
  return [...state.queues.keys()].sort((a, b) => (a === own ? -1 : b === own ? 1 : a.localeCompare(b)));
}

export function renderQueue() {
  const root = document.getElementById("queue");
  const seen = new Set();
  const sections = orderedDepartments().map((department) => {
    rememberDepartment(department);
    const sessions = state.queues.get(department) || [];
    const items = sessions.map((session) => {
      seen.add(session.id);
      return queueItem(session);
    });
    return el("section", { class: "queue-department", testid: "queue-department", dataset: { department } },
      el("h3", { class: "queue-department-title" },
        el("span", { text: departmentLabel(department), title: department }),
        el("span", { class: "count", testid: "queue-count", text: String(sessions.length),
          "aria-label": `${sessions.length} waiting` })),
      items.length ? el("ul", { class: "queue-items" }, items)
        : el("p", { class: "empty", testid: "queue-empty", text: "Nobody is waiting." }));
  });
  for (const id of nodes.keys()) if (!seen.has(id)) nodes.delete(id);
  root.replaceChildren(...(sections.length ? sections
    : [el("p", { class: "empty", testid: "queue-empty", text: "Nobody is waiting." })]));
  tickWaits();
  emit("queues");
}

function queueItem(session) {
  let node = nodes.get(session.id);
  const subject = session.subject || "New chat";
  if (!node) {
    node = el("li", { class: "queue-item", testid: "queue-item", dataset: { sessionId: session.id } },
      el("span", { class: "queue-subject", testid: "queue-subject", text: subject }),
      el("span", { class: "queue-meta muted" }),
      el("span", { class: "queue-preview", testid: "queue-preview" }),
      el("span", { class: "waiting", testid: "waiting", dataset: { since: session.started_at },
        title: "Waiting time" }),
      state.me ? el("button", {
        type: "button", class: "btn btn-primary btn-small queue-accept", testid: "accept", text: "Accept",
        "aria-label": `Accept chat: ${subject}`, onclick: (e) => accept(session, e.currentTarget),
      }) : null);
    nodes.set(session.id, node);
  }
  const position = session.queue_position ? `#${session.queue_position} · ` : "";
  node.querySelector(".queue-meta").textContent = `${position}${customerLabel(session)}`;
  const preview = node.querySelector(".queue-preview");   // what they asked, before accepting blind
  preview.textContent = session.preview ? `“${session.preview}”` : "";
  preview.hidden = !session.preview;
  return node;
}

function tickWaits() {
  const now = Date.now();
  for (const node of document.querySelectorAll("[data-testid=waiting][data-since], .js-wait[data-since]")) {
    const seconds = secondsSince(node.dataset.since, now);
    node.textContent = formatDuration(seconds);
    node.classList.toggle("is-long", seconds >= LONG_WAIT_SECONDS);
  }
}

async function accept(session, button) {
  button.disabled = true;
  button.textContent = "Accepting…";
  state.accepting.add(session.id);
  try {
    const data = await state.live.call("chat:accept", { session_id: session.id });
    dropFromQueue(session.id);
    onAccepted(data.session);
  } catch (error) {
    if (error.code === "conflict" || error.code === "not_found") {
      dropFromQueue(session.id);
      toast(error.message, { title: "Chat taken", kind: "warning" });
    } else {
      button.disabled = false;
      button.textContent = "Accept";
      toast(error.message, { title: "Could not accept the chat", kind: "error" });
    }
  } finally {
    state.accepting.delete(session.id);
  }
}
