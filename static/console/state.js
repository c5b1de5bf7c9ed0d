// What the console's modules share: who is signed in, the socket, queues and the agent roster,
// the visible section, and a tiny event bus between modules.

export const state = {
  token: null,
  userId: null,        // the agent's user id (JWT sub)
  role: null,          // agent | supervisor | admin
  name: "",
  me: null,            // GET /api/v1/agents/me, or null (a supervisor or admin without an agent profile)
  live: null,          // the Socket.IO connection (live.js)
  queues: new Map(),   // department -> [Session] waiting
  roster: new Map(),   // agent user id -> {id, display_name, status, active_chats, capacity, department?}
  departments: new Set(),
  departmentNames: new Map(),   // department name -> display name (GET /api/v1/departments)
  alerts: new Map(),   // department name -> its raised queue alert (queue:alert)
  accepting: new Set(),   // session ids this console is accepting right now
  section: "queue",    // queue | chat | tickets | team
};

const bus = new EventTarget();

export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  bus.addEventListener(name, (event) => handler(event.detail));
}

export function isSupervisor() {
  return state.role === "supervisor" || state.role === "admin";
}

const PHONE = window.matchMedia("(max-width: 760px)");

export function isPhone() {
  return PHONE.matches;
}

PHONE.addEventListener("change", () => emit("section", state.section));

export function setSection(section) {
  state.section = section;
  document.body.dataset.section = section;
  for (const button of document.querySelectorAll("[data-section-target]")) {
    const current = button.dataset.sectionTarget === section ||
      (!isPhone() && section === "queue" && button.dataset.sectionTarget === "chat");
    if (current) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  emit("section", section);
}

/** Is the chat workspace on screen? (Side by side with the queue on a desktop.) */
export function chatsOnScreen() {
  return state.section === "chat" || (!isPhone() && state.section === "queue");
}

export function agentName(userId) {
  if (userId && String(userId) === String(state.userId)) return "You";
  return state.roster.get(String(userId))?.display_name || "Agent";
}

let departmentsAnnounced = true;

/** Note a department name; listeners hear once per batch of new names. */
/** How a department reads on screen: its display name once known, else its name. */
export function departmentLabel(name) {
  return state.departmentNames.get(name) || name;
}

export function rememberDepartment(name, displayName) {
  if (!name) return;
  const known = state.departments.has(name);
  const renamed = displayName && state.departmentNames.get(name) !== displayName;
  if (renamed) state.departmentNames.set(name, displayName);
  if (known && !renamed) return;
  state.departments.add(name);
  if (departmentsAnnounced) {
    departmentsAnnounced = false;
    queueMicrotask(() => {
      departmentsAnnounced = true;
      emit("departments");
    });
  }
}
