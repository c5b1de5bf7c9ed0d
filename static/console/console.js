// Agent console: sign-in, header (presence, connection), sections, and the socket's events.
// Modules: lib.js (DOM and REST helpers), live.js (Socket.IO), state.js (shared state),
// auth.js (the Auth Service: login redirect, token renewal, "sign in again"),
// queue.js, chats.js, context.js (customer tickets, KB), bookings.js (the customer's bookings beside
// the chat and ticket), tickets.js, team.js, alerts.js.
//
// data-testid attributes (stable; tests and tools rely on them):
//   sign-in     signin, signin-login (with CONSOLE_LOGIN_URL), token-input, signin-submit, signin-error,
//               session-banner (data-reason), session-banner-text, reauth, reauth-token, reauth-apply,
//               reauth-error (auth.js)
//   header      agent-name, agent-role, presence (select: online/away/offline), connection
//               (data-state: connecting | connected | reconnecting | offline), notify-enable, signout
//   navigation  nav-queue, nav-chat, nav-unread (unread total), nav-tickets, nav-team
//   queue       queue, queue-department (data-department), queue-count, queue-empty,
//               queue-item (data-session-id), queue-subject, waiting (m:ss), accept
//   chats       chat-list, chat-tab (data-session-id), chat-tab-label, unread, no-chat,
//               chat-pane (data-session-id), chat-title, chat-ended, close-chat, end-chat,
//               transfer, transfer-panel, transfer-agent, transfer-agent-confirm,
//               transfer-department, transfer-department-confirm,
//               message (data-seq, data-sender, data-client-msg-id; data-status while unsent), message-text,
//               message-status (Sending… / Not sent / Sent / Seen), retry, note, typing,
//               composer, note-toggle (aria-pressed), canned, send
//   context     customer-tickets, customer-ticket (data-ticket-id), kb-query, kb-search,
//               kb-result (data-article-id), kb-insert
//   bookings    customer-bookings (beside the chat), ticket-booking (the linked one), ticket-bookings,
//               booking-list, booking (data-booking-id), booking-reference, booking-status,
//               booking-property, booking-dates, booking-amount, booking-link, booking-unlink,
//               bookings-empty, bookings-unavailable
//   tickets     tickets-view, ticket-filter-status, ticket-filter-priority, ticket-filter-category,
//               ticket-filter-q, ticket-row (data-ticket-id), ticket-row-status, tickets-empty,
//               tickets-prev, tickets-next, tickets-range, ticket-view, ticket-back,
//               ticket-number, ticket-subject, ticket-status, ticket-priority, ticket-escalation,
//               ticket-facts, ticket-description, ticket-thread, ticket-message (data-internal),
//               ticket-reply, ticket-internal, ticket-send, ticket-status-select,
//               ticket-status-apply, ticket-escalate, ticket-error, ticket-history, history-item
//   team        team-view, team-department (filter), team-summary, agent-row (data-agent-id),
//               team-agent-name, agent-status, agent-load ("active / capacity"),
//               team-queue (data-department), team-queue-count
//   alerts      toasts, toast

import { setupNotificationButton, toast } from "./alerts.js";
import * as auth from "./auth.js";
import { initBookings } from "./bookings.js";
import * as chats from "./chats.js";
import { initContext } from "./context.js";
import { api, ApiError, el, label, setAuth, tokenClaims } from "./lib.js";
import { connectLive } from "./live.js";
import { applySnapshotQueue, initQueue, onQueueUpdated, renderQueue } from "./queue.js";
import { departmentLabel, isSupervisor, on, rememberDepartment, setSection, state } from "./state.js";
import { initProfile } from "./profile.js";
import { initTeam, loadRoster, applySnapshotAgents, onPresence, onQueueAlert, refreshFiguresSoon } from "./team.js";
import { initTickets, onTicketPush, onTicketRated, showTicket } from "./tickets.js";

const TOKEN_KEY = "support-console-token";
const ERROR_KEY = "support-console-signin-error";   // a message for the sign-in form after a reload
const SERVER_FULL_RETRY_MS = 3000;

// ---------------------------------------------------------------- sign-in

/** `#token=…&status=online` (the dev banner's console link): the status to take once connected. */
const statusFromLink = new URLSearchParams(location.hash.slice(1)).get("status");

function tokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token !== null) history.replaceState(null, "", location.pathname + location.search);   // out of the address bar
  return token;
}

function showSignIn(message = "") {
  document.body.dataset.screen = "signin";
  const login = auth.hasLogin();      // the Auth Service's page first, a pasted token second
  document.getElementById("signin-login").hidden = !login;
  document.getElementById("signin-or").hidden = !login;
  document.getElementById("signin-intro").hidden = login;
  const submit = document.getElementById("signin-submit");
  submit.className = login ? "btn" : "btn btn-primary";
  submit.textContent = login ? "Sign in with token" : "Sign in";
  document.getElementById("app").hidden = true;
  document.getElementById("signin").hidden = false;
  const error = document.getElementById("signin-error");
  error.hidden = !message;
  error.textContent = message;
  document.getElementById(login ? "signin-login" : "token-input").focus();
}

function signInFailed(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (auth.hasLogin() && !auth.justBackFromLogin()) {   // signed out: the Auth Service signs in again
    if (state.live) state.live.close();
    auth.goToLogin();
    return;
  }
  if (!state.token) {
    showSignIn(message);
    return;
  }
  // Signed in until now: start over from a clean page, with the reason on the sign-in form.
  if (state.live) state.live.close();
  sessionStorage.setItem(ERROR_KEY, message);
  location.replace(location.pathname);
}

async function signIn(token) {
  token = token.trim().replace(/^Bearer\s+/i, "");
  const claims = tokenClaims(token);
  if (!claims) {
    signInFailed("That is not a valid access token. Paste the whole token.");
    return;
  }
  setAuth(token, () => signInFailed("Your session has expired or the token is no longer valid. Sign in again."));
  state.token = null;
  let me = null;
  try {
    me = await api("/api/v1/agents/me");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return signInFailed("This token is invalid or has expired. Ask for a new one.");
    if (error.status === 403) return signInFailed("This token is not for an agent, supervisor or admin.");
    if (error.status !== 404) return signInFailed(`Could not sign in: ${error.message}`);
    if (claims.role === "agent") return signInFailed("You have no agent profile yet; ask a supervisor to create one.");
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  auth.signedIn();
  Object.assign(state, {
    token, me, userId: String(claims.sub), role: me?.role || claims.role, name: me?.display_name || claims.name || "",
  });
  startApp();
  auth.watchToken(token, useToken);
}

/** A renewed (or newly signed-in) token of the same agent: REST, the socket and the tab use it,
 * nothing else changes (open chats, drafts and unsent messages stay). Rejects when it is refused. */
async function useToken(token) {
  try {
    await api("/api/v1/agents/me", { token });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401 || error.status === 403) {
      throw new Error(error.status ? "That token was refused. Sign in again." : error.message);
    }
  }
  setAuth(token);
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  if (state.live) await state.live.renew(token);
  auth.watchToken(token, useToken);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.live) state.live.close();
  if (auth.hasLogin()) {
    auth.goToLogin();
    return;
  }
  location.replace(location.pathname);   // a clean page: no state of the previous agent is left
}

// ---------------------------------------------------------------- the signed-in console

function startApp() {
  document.body.dataset.screen = "app";
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("agent-name").textContent = state.name || "Signed in";
  document.getElementById("agent-role").textContent = label(state.role);
  document.querySelector('[data-testid="nav-team"]').hidden = !isSupervisor();
  const presence = document.getElementById("presence");
  document.getElementById("presence-wrap").hidden = !state.me;
  if (state.me) reflectPresence(state.me.status);
  presence.addEventListener("change", () => changePresence(presence.value));
  setupNotificationButton(document.getElementById("notify-enable"));

  initQueue({ accepted: (session) => chats.openChat(session, { focus: true, reveal: true }) });
  chats.initChats();
  initContext({ showTicket });
  initBookings();
  initTickets();
  initTeam({ watch: (session) => {
    chats.openChat(session, { watch: true, focus: true });
    setSection("chat");
  } });
  initProfile();
  setSection("queue");
  if (state.me) rememberOwnDepartment();
  renderQueue();
  loadCanned();
  loadDepartments();
  loadRoster();
  connect();
}

function rememberOwnDepartment() {
  state.queues.set(state.me.department, state.queues.get(state.me.department) || []);
}

function connect() {
  state.live = connectLive(state.token, {
    onState: setConnection,
    onConnect: () => resume(),
    onRefused: (message, code) => {
      if (code === "server_full") {
        setConnection("reconnecting");
        setTimeout(() => state.live && state.live.retry(), SERVER_FULL_RETRY_MS);
        return;
      }
      signInFailed(code === "unauthorized" ? "This token is invalid or has expired. Ask for a new one." : message);
    },
  });
  const live = state.live;
  live.on("queue:updated", onQueueUpdated);
  live.on("presence:updated", (data) => {
    onPresence(data);
    refreshFiguresSoon();
    if (String(data.agent_id) === state.userId) reflectPresence(data.status);
  });
  live.on("chat:assigned", chats.onAssigned);
  live.on("chat:message", chats.onMessage);
  live.on("chat:typing", chats.onTyping);
  live.on("chat:read", chats.onRead);
  live.on("chat:ended", chats.onEnded);
  live.on("chat:transferred", chats.onTransferred);
  live.on("chat:note", chats.onNote);
  live.on("chat:rated", chats.onRated);
  live.on("ticket:rated", onTicketRated);
  live.on("queue:alert", onQueueAlert);
  live.on("chat:resync", chats.onResync);
  for (const event of ["ticket:created", "ticket:updated", "ticket:escalated", "ticket:assigned", "ticket:message"]) {
    live.on(event, (data) => onTicketPush(event, data));
  }
}

/** On every (re)connection: the queue, the agents, my chats, and what each chat missed. */
async function resume() {
  try {
    const snapshot = await state.live.call("queue:snapshot", {});
    applySnapshotQueue(snapshot.queued);
    applySnapshotAgents(snapshot.agents);
    const me = snapshot.agents.find((a) => String(a.id) === state.userId);
    if (me) reflectPresence(me.status);
    if (me && ["online", "away", "offline"].includes(statusFromLink) && state.linkStatusApplied !== true) {
      state.linkStatusApplied = true;   // once per page: later changes are the agent's own
      if (me.status !== statusFromLink) await changePresence(statusFromLink);
    }
    await chats.resumeAll(snapshot.mine);
  } catch (error) {
    if (error.code !== "disconnected") toast(error.message, { title: "Could not load the queue", kind: "error" });
  }
}

function setConnection(connection) {
  const node = document.getElementById("connection");
  node.dataset.state = connection;
  node.textContent = { connected: "Connected", reconnecting: "Reconnecting…", offline: "Offline" }[connection]
    || "Connecting…";
}

function reflectPresence(status) {
  const presence = document.getElementById("presence");
  presence.value = status;
  presence.dataset.status = status;
  if (state.me) state.me.status = status;
}

async function changePresence(status) {
  const presence = document.getElementById("presence");
  presence.disabled = true;
  try {
    const data = await state.live.call("agent:status", { status });
    reflectPresence(data.agent.status);
  } catch (error) {
    reflectPresence(state.me?.status || "offline");
    toast(error.message, { title: "Status not changed", kind: "error" });
  } finally {
    presence.disabled = false;
  }
}

async function loadCanned() {
  try {
    const query = { limit: 100 };
    if (state.me && !isSupervisor()) query.department = state.me.department;
    const page = await api("/api/v1/canned-responses", { query });
    chats.setCanned(page.items);
  } catch {
    chats.setCanned([]);
  }
}

/** Departments with their display names, for transfers, queues and the team view. */
async function loadDepartments() {
  try {
    for (let offset = 0; offset < 1000; offset += 100) {
      const page = await api("/api/v1/departments", { query: { limit: 100, offset } });
      for (const d of page.items) {
        rememberDepartment(d.name, d.display_name);
        if (d.queue_alert_raised_at) state.alerts.set(d.name, { department: d.name, raised: true,
          raised_at: d.queue_alert_raised_at, threshold_minutes: d.queue_alert_minutes });
      }
      if (offset + page.items.length >= page.total) break;
    }
  } catch {
    // the queue's departments are known anyway (shown by name)
  }
  renderDepartments();
}

function renderDepartments() {
  let list = document.getElementById("departments-list");
  if (!list) {
    list = el("datalist", { id: "departments-list" });
    document.body.append(list);
  }
  list.replaceChildren(...[...state.departments].sort().map((name) =>
    el("option", { value: name, label: departmentLabel(name) })));
}

// ---------------------------------------------------------------- boot

async function boot() {
  const fromFragment = tokenFromFragment();
  await auth.loadConfig();
  if (await auth.handOff(fromFragment)) {   // a "sign in again" window: its console took the token
    document.body.dataset.screen = "handoff";
    document.body.replaceChildren(el("p", { class: "handoff", testid: "handoff",
      text: "You are signed in again. You can close this window." }));
    window.close();
    return;
  }
  for (const button of document.querySelectorAll("[data-section-target]")) {
    button.addEventListener("click", () => setSection(button.dataset.sectionTarget));
  }
  document.getElementById("signout").addEventListener("click", signOut);
  document.getElementById("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("token-input").value.trim();
    if (!value) {
      showSignIn("Paste your access token first.");
      return;
    }
    signIn(value);
  });
  on("departments", renderDepartments);
  document.getElementById("signin-login").addEventListener("click", () => auth.goToLogin());
  const token = fromFragment ?? sessionStorage.getItem(TOKEN_KEY);
  const error = sessionStorage.getItem(ERROR_KEY);
  sessionStorage.removeItem(ERROR_KEY);
  if (token) signIn(token);
  else if (auth.hasLogin() && !error && !auth.justBackFromLogin()) auth.goToLogin();
  else showSignIn(error || (auth.hasLogin() && auth.justBackFromLogin() ? "The sign-in did not complete. Try again." : ""));
}

boot();
