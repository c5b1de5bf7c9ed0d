// Sign-in through the platform's Auth Service and the token's lifetime (README "Console sign-in").
//
// - GET /console/config.json says whether CONSOLE_LOGIN_URL and CONSOLE_REFRESH_URL are set.
// - A signed-out console goes to CONSOLE_LOGIN_URL?return_to=<this console's URL>; the Auth Service
//   sends the agent back to <return_to>#token=<JWT> (console.js reads the fragment).
// - Shortly before the token's exp (2 minutes before, or at half the life of a shorter token) the
//   console POSTs it to CONSOLE_REFRESH_URL (Authorization: Bearer <old>, credentials included)
//   and takes the {"token"} of the answer (a failed call is tried again while the token lasts).
//   Without a refresh URL, or when renewal fails, a banner
//   asks the agent to sign in again: through the login page in a small window (it returns to
//   /console?reauth=<nonce>#token=..., which hands the token to this page over a
//   BroadcastChannel and closes), else with a pasted token; the console, its chats and their
//   unsent messages stay as they are.
//
// data-testid: signin-login (sign-in screen), session-banner (data-reason: expiring | failed),
// session-banner-text, reauth (the "Sign in again" button), reauth-token, reauth-apply, reauth-error.

import { el, tokenClaims } from "./lib.js";

const LOGIN_AT_KEY = "support-console-login-at";   // when this tab last went to the login page
const LOGIN_LOOP_MS = 600_000;   // back from the login page this recently with a refused token: stop
const RENEW_LEAD_S = 120;        // renew this long before exp ...
const RETRY_MIN_MS = 5_000;      // a failed renewal is tried again while the token lasts ...
const RETRY_MAX_MS = 30_000;     // ... at most this far apart
const CHANNEL = "support-console-auth";
const HANDOFF_WAIT_MS = 3000;    // how long a returning sign-in window waits for its console to answer
const MAX_TIMER_MS = 2 ** 31 - 1;

let config = { login_url: null, refresh_url: null, return_to_param: "return_to" };

/** Read /console/config.json (no Auth Service when it cannot be read). */
export async function loadConfig() {
  try {
    const response = await fetch("/console/config.json", { headers: { Accept: "application/json" } });
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch {
    // keep the paste-a-token form
  }
  return config;
}

export function hasLogin() {
  return Boolean(config.login_url);
}

function consoleUrl(query = "") {
  return location.origin + location.pathname + query;
}

function loginHref(returnTo) {
  const url = new URL(config.login_url, location.origin);
  url.searchParams.set(config.return_to_param || "return_to", returnTo);
  return url.href;
}

/** Leave for the Auth Service's login page, which sends the agent back with a token. */
export function goToLogin() {
  sessionStorage.setItem(LOGIN_AT_KEY, String(Date.now()));
  location.assign(loginHref(consoleUrl()));
}

/** Did this tab come back from the login page just now? (Then a refused token must not send it
 * there again, or a misconfigured Auth Service would bounce the agent back and forth.) */
export function justBackFromLogin() {
  const at = Number(sessionStorage.getItem(LOGIN_AT_KEY) || 0);
  return Date.now() - at < LOGIN_LOOP_MS;
}

export function signedIn() {
  sessionStorage.removeItem(LOGIN_AT_KEY);
}

// ---------------------------------------------------------------- the token's lifetime

let timer = null;
let watched = null;    // {token, claims, due (ms), onRenewed}

/**
 * Watch a signed-in token: renew it (or ask for a new sign-in) shortly before it expires.
 * onRenewed(newToken) puts a new token to use; it rejects (with a message) when the server
 * refuses the token.
 */
export function watchToken(token, onRenewed) {
  clearTimeout(timer);
  const claims = tokenClaims(token) || {};
  watched = { token, claims, due: Infinity, onRenewed };
  hideBanner();
  if (!Number.isFinite(claims.exp)) return;
  const now = Date.now() / 1000;
  const life = claims.exp - (Number.isFinite(claims.iat) ? claims.iat : now);
  const lead = Math.min(RENEW_LEAD_S, Math.max(life, 0) / 2);
  watched.due = (claims.exp - lead) * 1000;
  arm(token);
}

function arm(token) {
  timer = setTimeout(() => renewOrAsk(token), Math.min(Math.max(0, watched.due - Date.now()), MAX_TIMER_MS));
}

async function renewOrAsk(token) {
  if (!watched || watched.token !== token) return;
  if (Date.now() < watched.due - 1000) {   // a long wait is cut into timers of at most MAX_TIMER_MS
    arm(token);
    return;
  }
  if (!config.refresh_url) {
    showBanner("expiring");
    return;
  }
  let fresh = null;
  try {
    fresh = await refresh(token);
  } catch {
    fresh = null;
  }
  if (!watched || watched.token !== token) return;
  try {
    if (fresh) {
      await watched.onRenewed(fresh);
      return;
    }
  } catch {
    // refused by the server: ask the agent
  }
  showBanner("failed");
  // ... and try again now and then while the token lasts (a passing outage of the Auth Service)
  const left = watched.claims.exp * 1000 - Date.now();
  if (left > 2 * RETRY_MIN_MS) timer = setTimeout(() => renewOrAsk(token), Math.min(RETRY_MAX_MS, left / 2));
}

/** POST the token to CONSOLE_REFRESH_URL; the new token, or null when the answer is no good. */
async function refresh(token) {
  const response = await fetch(new URL(config.refresh_url, location.origin), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    credentials: "include",
    cache: "no-store",
  });
  if (!response.ok) return null;
  const body = await response.json().catch(() => null);
  return acceptable(body?.token) ? body.token : null;
}

/** A replacement token must be a token for the same user that expires later. */
function acceptable(token) {
  const claims = typeof token === "string" ? tokenClaims(token) : null;
  return Boolean(claims && watched && String(claims.sub) === String(watched.claims.sub) &&
    Number.isFinite(claims.exp) && claims.exp > Date.now() / 1000);
}

// ---------------------------------------------------------------- the banner

let banner = null;

function expiryText() {
  const exp = watched?.claims.exp;
  if (!exp) return "";
  return new Date(exp * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function buildBanner() {
  const text = el("span", { class: "session-banner-text", testid: "session-banner-text" });
  const button = el("button", { type: "button", class: "btn btn-primary btn-small", testid: "reauth",
    onclick: () => signInAgain() }, "Sign in again");
  const input = el("input", { type: "text", class: "session-banner-input", testid: "reauth-token",
    "aria-label": "New access token", placeholder: "Paste a new access token", autocomplete: "off",
    spellcheck: "false" });
  const apply = el("button", { type: "submit", class: "btn btn-small", testid: "reauth-apply" }, "Use token");
  const error = el("p", { class: "form-error", testid: "reauth-error", role: "alert", hidden: true });
  const form = el("form", { class: "session-banner-form", hidden: true, onsubmit: (event) => {
    event.preventDefault();
    applyPasted(input.value);
  } }, input, apply);
  const node = el("div", { class: "session-banner", testid: "session-banner", role: "status", hidden: true },
    el("div", { class: "session-banner-row" }, text, button), form, error);
  document.body.append(node);
  return { node, text, button, form, input, error };
}

function showBanner(reason) {
  banner = banner || buildBanner();
  const at = expiryText();
  banner.node.dataset.reason = reason;
  banner.text.textContent = (reason === "failed" ? "Your session could not be renewed. " : "") +
    (at ? `Your session ends at ${at}. ` : "Your session ends soon. ") +
    "Sign in again to keep working; your chats stay open.";
  banner.error.hidden = true;
  banner.node.hidden = false;
}

function hideBanner() {
  if (!banner) return;
  banner.node.hidden = true;
  banner.form.hidden = true;
  banner.input.value = "";
  banner.error.hidden = true;
}

function bannerError(message) {
  banner.error.textContent = message;
  banner.error.hidden = false;
}

/** "Sign in again": the login page in a small window, else a pasted token. */
function signInAgain() {
  if (!config.login_url) {
    banner.form.hidden = false;
    banner.input.focus();
    return;
  }
  const nonce = crypto.getRandomValues(new Uint32Array(2)).join("");
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = async ({ data }) => {
    if (data?.type !== "token" || data.nonce !== nonce) return;
    channel.postMessage({ type: "taken", nonce });
    channel.close();
    await applyPasted(data.token);
  };
  const href = loginHref(consoleUrl(`?reauth=${nonce}`));
  const opened = window.open(href, "support-console-signin", "popup,width=520,height=680");
  if (!opened) {                         // blocked: go there in this tab (open chats come back)
    channel.close();
    goToLogin();
  }
}

async function applyPasted(value) {
  const token = String(value || "").trim().replace(/^Bearer\s+/i, "");
  if (!acceptable(token)) {
    bannerError(tokenClaims(token) ? "That token is for another user or has expired." :
      "That is not a valid access token.");
    return;
  }
  try {
    await watched.onRenewed(token);
  } catch (error) {
    if (banner) {
      banner.node.hidden = false;
      bannerError(error.message || "That token was refused.");
    }
  }
}

// ---------------------------------------------------------------- the sign-in window's return

/**
 * In a window opened by "Sign in again" and sent back here by the Auth Service
 * (/console?reauth=<nonce>#token=...): hand the token to the console that asked and close.
 * Resolves true when handed over; false when no console answered (then this page signs in).
 */
export function handOff(token) {
  const nonce = new URLSearchParams(location.search).get("reauth");
  if (!nonce || !token || typeof BroadcastChannel === "undefined") return Promise.resolve(false);
  history.replaceState(null, "", location.pathname);
  return new Promise((resolve) => {
    const channel = new BroadcastChannel(CHANNEL);
    const done = (taken) => {
      clearTimeout(wait);
      channel.close();
      resolve(taken);
    };
    const wait = setTimeout(() => done(false), HANDOFF_WAIT_MS);
    channel.onmessage = ({ data }) => {
      if (data?.type === "taken" && data.nonce === nonce) done(true);
    };
    channel.postMessage({ type: "token", nonce, token });
  });
}
