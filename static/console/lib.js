// Small helpers shared by the console's modules: building DOM safely, formatting, REST calls.
//
// Text from users only ever reaches the page through textContent / text nodes (el() below):
// nothing here, or anywhere in the console, assigns innerHTML.

/** Create an element. props: class, text, testid, dataset, on<event>, other attributes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "testid") node.dataset.testid = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);   // strings become text nodes
  }
  return node;
}

// ---------------------------------------------------------------- formatting

export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function secondsSince(iso, now = Date.now()) {
  return iso ? (now - Date.parse(iso)) / 1000 : 0;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

export function formatDateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** A message's text, or its structured parts (automatic messages): text, times in the reader's
 *  locale and time zone, article cards. `message` is the fallback for parts this console does
 *  not know. The element carries data-testid=message-text either way. */
export function messageBody(message) {
  const parts = message.parts;
  const known = Array.isArray(parts) && parts.length && parts.every((p) => ["text", "time", "articles"].includes(p.type));
  if (!known) return el("p", { class: "msg-text", testid: "message-text", text: message.message });
  return el("div", { class: "msg-text msg-parts", testid: "message-text" }, parts.map((part) => {
    if (part.type === "text") return String(part.text ?? "");
    if (part.type === "time") {
      const when = new Date(part.value);
      const text = Number.isNaN(when.getTime()) ? String(part.value)
        : new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" }).format(when);
      return el("time", { datetime: part.value, testid: "part-time", text });
    }
    return el("ul", { class: "article-cards" }, (part.items || []).map((a) => el("li", {},
      el("a", { class: "article-card", testid: "article-card", target: "_blank", rel: "noopener noreferrer",
        href: /^\/[^/]/.test(a.url) || /^https?:\/\//.test(a.url) ? a.url : null, text: a.title }))));
  }));
}

/** Who the customer is: their name from the session, else the start of their id. */
export function customerLabel(session) {
  return session.customer_name || `customer ${shortId(session.customer_id)}`;
}

export function shortId(id) {
  return String(id || "").slice(0, 8);
}

const LABELS = {
  open: "Open", in_progress: "In progress", pending: "Pending", resolved: "Resolved", closed: "Closed",
  low: "Low", medium: "Medium", high: "High", urgent: "Urgent",
  online: "Online", away: "Away", offline: "Offline",
  queued: "Waiting", active: "Active", ended: "Ended", timed_out: "Timed out", abandoned: "Abandoned",
  agent: "Agent", supervisor: "Supervisor", admin: "Admin",
};

export function label(value) {
  return LABELS[value] || String(value ?? "");
}

/** A KB snippet is HTML-escaped text with matches in <mark>…</mark>: rebuild it as nodes. */
export function snippetNodes(snippet) {
  const parts = String(snippet || "").split(/<mark>|<\/mark>/);
  return parts.map((part, i) => {
    const text = decodeEntities(part);
    return i % 2 ? el("mark", { text }) : document.createTextNode(text);
  });
}

function decodeEntities(text) {
  const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, code) => {
    if (code[0] === "#") {
      const n = code[1].toLowerCase() === "x" ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
      return Number.isFinite(n) ? String.fromCodePoint(n) : whole;
    }
    return named[code.toLowerCase()] ?? whole;
  });
}

/** The claims of a JWT, for display only (the server checks the token). */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- REST

export class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.code = problem?.code;
    this.problem = problem;
  }
}

function problemText(status, problem) {
  if (problem?.errors && typeof problem.errors === "object") {
    const fields = Object.entries(problem.errors).map(([field, messages]) =>
      `${field}: ${[].concat(messages).join(" ")}`);
    if (fields.length) return fields.join("; ");
  }
  return problem?.detail || problem?.title || `Request failed (${status})`;
}

let authToken = null;
let onUnauthorized = () => {};

/** The bearer token the console signed in with (uploads use it: static/console/attachments.js). */
export function bearerToken() {
  return authToken;
}

export function setAuth(token, unauthorizedHandler) {
  authToken = token;
  if (unauthorizedHandler) onUnauthorized = unauthorizedHandler;
}

/** Call the REST API; resolves to the JSON body, rejects with ApiError (problem+json).
 * ``token`` tries another token than the signed-in one (a 401 then is the caller's to handle). */
export async function api(path, { method = "GET", query, body, token } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (token || authToken) headers.Authorization = `Bearer ${token || authToken}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached; check your connection" });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !token) onUnauthorized(error);
    throw error;
  }
  return data;
}

/** "★★★★☆ 4/5 · “comment”": the stars are decoration, the words say it. */
export function ratingNodes({ rating, comment }) {
  return el("span", { class: "rating" },
    el("span", { class: "stars", "aria-hidden": "true", text: "★".repeat(rating) + "☆".repeat(5 - rating) }),
    el("span", { testid: "rating-value", text: ` Rated ${rating}/5` }),
    comment ? el("q", { class: "rating-comment", testid: "rating-comment", text: comment }) : null);
}
