// Supervisors and admins: every agent's status and load (live from presence:updated) with
// today's figures (GET /api/v1/agents/stats), the queues of all departments with their alerts
// (queue:alert), and the live chats, each of which a supervisor can watch, note and take over.

import { toast } from "./alerts.js";
import { api, customerLabel, el, formatDuration, label, secondsSince } from "./lib.js";
import { departmentLabel, emit, isSupervisor, on, rememberDepartment, state } from "./state.js";

const ROSTER_PAGE = 100;
const ROSTER_MAX = 1000;
const STATS_EVERY_MS = 30000;
let rosterTimer = null;
let refreshTimer = null;
let onWatch = () => {};
const stats = new Map();       // agent user id -> today's figures
const liveChats = new Map();   // session id -> active Session

export function initTeam({ watch } = {}) {
  onWatch = watch || onWatch;
  on("queues", renderTeam);
  on("roster", renderTeam);
  on("departments", () => {
    renderDepartmentFilter();
    renderTeam();
  });
  on("section", (section) => { if (section === "team") refreshFigures(); });
  document.getElementById("team-department").addEventListener("change", renderTeam);
  if (isSupervisor()) setInterval(() => { if (state.section === "team") refreshFigures(); }, STATS_EVERY_MS);
}

/** Today's figures per agent and the live chats; soon after presence changes (load moved). */
export function refreshFiguresSoon() {
  if (!isSupervisor()) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshFigures, 400);
}

async function refreshFigures() {
  if (!isSupervisor()) return;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  try {
    const [figures, sessions] = await Promise.all([
      api("/api/v1/agents/stats", { query: { tz, limit: 100 } }),
      api("/api/v1/chat/sessions", { query: { status: "active", limit: 100, sort: "-started_at" } }),
    ]);
    stats.clear();
    for (const item of figures.items) stats.set(String(item.user_id), item);
    liveChats.clear();
    for (const session of sessions.items) liveChats.set(session.id, session);
    renderTeam();
  } catch {
    // the live roster still shows status and load
  }
}

/** queue:alert — a department's longest wait passed (or fell back under) its threshold. */
export function onQueueAlert(alert) {
  if (alert.raised) {
    state.alerts.set(alert.department, alert);
    toast(`${alert.waiting} waiting, the longest for ${formatDuration(alert.longest_wait_seconds)}`,
      { title: `Queue alert · ${departmentLabel(alert.department)}`, kind: "warning" });
  } else {
    state.alerts.delete(alert.department);
  }
  renderTeam();
}

/** Names and departments come from GET /api/v1/agents; status and load from the socket. */
export async function loadRoster() {
  if (!isSupervisor()) return;
  try {
    for (let offset = 0; offset < ROSTER_MAX; offset += ROSTER_PAGE) {
      const page = await api("/api/v1/agents", { query: { limit: ROSTER_PAGE, offset } });
      for (const agent of page.items) {
        const id = String(agent.user_id);
        const known = state.roster.get(id) || {};
        state.roster.set(id, {
          id, display_name: agent.display_name, department: agent.department, role: agent.role,
          status: known.status ?? agent.status, active_chats: known.active_chats ?? agent.active_chats,
          capacity: known.capacity ?? agent.max_chats,
        });
        rememberDepartment(agent.department);
      }
      if (offset + page.items.length >= page.total || !page.items.length) break;
    }
    emit("roster");
  } catch {
    // the socket's roster still shows names and load
  }
}

/** The agents part of a queue:snapshot. */
export function applySnapshotAgents(agents) {
  for (const agent of agents) {
    const id = String(agent.id);
    state.roster.set(id, { ...(state.roster.get(id) || {}), ...agent, id });
  }
  emit("roster");
}

export function onPresence({ agent_id: agentId, status, active_chats: active, capacity }) {
  const id = String(agentId);
  const known = state.roster.get(id);
  state.roster.set(id, { display_name: "Agent", ...(known || {}), id, status, active_chats: active, capacity });
  if (!known && isSupervisor()) {   // someone new: fetch their name and department
    clearTimeout(rosterTimer);
    rosterTimer = setTimeout(loadRoster, 500);
  }
  emit("roster");
}

function selectedDepartment() {
  return document.getElementById("team-department").value;
}

function renderDepartmentFilter() {
  if (!isSupervisor()) return;
  const select = document.getElementById("team-department");
  const current = select.value;
  select.replaceChildren(el("option", { value: "", text: "All departments" }),
    ...[...state.departments].sort().map((name) => el("option", { value: name, text: departmentLabel(name) })));
  select.value = current;
}

function renderTeam() {
  if (!isSupervisor()) return;
  const department = selectedDepartment();
  const agents = [...state.roster.values()]
    .filter((a) => !department || a.department === department)
    .sort((a, b) => (a.department || "").localeCompare(b.department || "")
      || (a.display_name || "").localeCompare(b.display_name || ""));
  document.getElementById("team-rows").replaceChildren(...agents.map(agentRow));
  const online = agents.filter((a) => a.status === "online").length;
  const busy = agents.reduce((sum, a) => sum + (a.active_chats || 0), 0);
  const places = agents.reduce((sum, a) => sum + (a.capacity || 0), 0);
  document.getElementById("team-summary").textContent =
    `${online} of ${agents.length} online · ${busy} of ${places} chat places in use`;
  renderQueues(department);
  renderLiveChats(department);
}

function agentRow(agent) {
  const share = agent.capacity ? Math.min(1, agent.active_chats / agent.capacity) : 0;
  const fill = el("span", { class: "load-fill" });
  fill.style.width = `${Math.round(share * 100)}%`;
  return el("tr", { class: "agent-row", testid: "agent-row", dataset: { agentId: agent.id } },
    el("td", {},
      el("span", { class: "team-agent-name", testid: "team-agent-name", text: agent.display_name || "Agent" }),
      agent.role && agent.role !== "agent" ? el("span", { class: "muted", text: ` · ${label(agent.role)}` }) : null),
    el("td", { class: "muted col-dept", text: agent.department ? departmentLabel(agent.department) : "—" }),
    el("td", {}, el("span", { class: `status-dot status-${agent.status}`, testid: "agent-status",
      text: label(agent.status) })),
    el("td", {}, el("div", { class: "load" },
      el("span", { class: `load-bar ${share >= 1 ? "is-full" : ""}`, "aria-hidden": "true" }, fill),
      el("span", { testid: "agent-load", text: `${agent.active_chats} / ${agent.capacity}` }))),
    ...figureCells(stats.get(String(agent.id))));
}

function seconds(value) {
  return value && value.avg != null ? formatDuration(Math.round(value.avg)) : "—";
}

/** Today: chats, average first response, average handle time, ratings. */
function figureCells(figures) {
  const rating = figures?.ratings?.count ? `${figures.ratings.avg.toFixed(1)} ★ (${figures.ratings.count})` : "—";
  return [
    el("td", { class: "num", testid: "agent-chats-today", text: figures ? String(figures.chats) : "—" }),
    el("td", { class: "num col-wide", testid: "agent-first-response", text: seconds(figures?.first_response_seconds) }),
    el("td", { class: "num col-wide", testid: "agent-handle-time", text: seconds(figures?.handle_seconds) }),
    el("td", { class: "num", testid: "agent-rating-today", text: rating }),
  ];
}

function renderQueues(department) {
  const known = new Set([...state.departments, ...state.queues.keys()]);
  const departments = [...known].filter((d) => !department || d === department).sort();
  document.getElementById("team-queues").replaceChildren(...(departments.length ? departments.map((name) => {
    const sessions = state.queues.get(name) || [];
    const oldest = sessions.reduce((min, s) => (!min || s.started_at < min ? s.started_at : min), null);
    const alert = state.alerts.get(name);
    return el("div", { class: `team-queue ${sessions.length ? "has-waiting" : ""} ${alert ? "is-alert" : ""}`,
      testid: "team-queue", dataset: { department: name } },
    el("div", { class: "team-queue-head" },
      el("strong", { text: departmentLabel(name), title: name }),
      alert ? el("span", { class: "alert-badge", testid: "team-queue-alert",
        text: alert.threshold_minutes ? `Over ${alert.threshold_minutes} min` : "Long wait", title: "The longest wait passed this department's alert threshold" })
        : null,
      el("span", { class: "count", testid: "team-queue-count", text: String(sessions.length) })),
    el("p", { class: "muted" }, sessions.length
      ? ["Longest wait ", el("span", { class: "js-wait", dataset: { since: oldest },
        text: formatDuration(secondsSince(oldest)) })]
      : "Nobody waiting"));
  }) : [el("p", { class: "empty", text: "No queues yet." })]));
}

function renderLiveChats(department) {
  const sessions = [...liveChats.values()].filter((s) => !department || s.department === department);
  const rows = sessions.map((session) => el("li", { class: "live-chat", testid: "live-chat",
    dataset: { sessionId: session.id } },
  el("span", { class: "live-chat-who" },
    el("strong", { text: session.subject || customerLabel(session) }),
    el("span", { class: "muted", text: ` · ${customerLabel(session)} with ${session.agent?.display_name || "an agent"}` })),
  el("span", { class: "muted js-wait", dataset: { since: session.assigned_at || session.started_at },
    text: formatDuration(secondsSince(session.assigned_at || session.started_at)) }),
  el("button", { type: "button", class: "btn btn-small", testid: "watch-chat", text: "Watch",
    "aria-label": `Watch the chat with ${customerLabel(session)}`, onclick: () => onWatch(session) })));
  document.getElementById("team-chats").replaceChildren(...(rows.length ? rows
    : [el("li", { class: "empty", text: "No live chats." })]));
}
