// Alerts: in-page toasts (announced through an aria-live region), desktop notifications when
// the agent has already allowed them (never asked for unprompted), and the unread total in the
// page title.

import { el } from "./lib.js";

const TOAST_MS = 6000;
const MAX_TOASTS = 3;
const BASE_TITLE = "Agent console";

export function toast(text, { title = "", kind = "info", onOpen = null } = {}) {
  const region = document.getElementById("toasts");
  const close = () => node.remove();
  const node = el("div", { class: `toast toast-${kind}`, testid: "toast", role: kind === "error" ? "alert" : "status" },
    el("div", { class: "toast-body" },
      title ? el("strong", { class: "toast-title", text: title }) : null,
      el("span", { class: "toast-text", text })),
    onOpen ? el("button", { type: "button", class: "btn btn-small", text: "Open",
      onclick: () => { close(); onOpen(); } }) : null,
    el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", text: "×", onclick: close }));
  region.append(node);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  setTimeout(close, kind === "error" ? TOAST_MS * 2 : TOAST_MS);
  return node;
}

/** A desktop notification, only if permission was granted before; never prompts. */
export function desktopNotify(title, body, onClick) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && document.hasFocus()) return;   // the toast is enough
  try {
    const note = new Notification(title, { body, tag: title });
    note.onclick = () => {
      window.focus();
      if (onClick) onClick();
      note.close();
    };
  } catch {
    // some browsers only allow notifications from a service worker: the toast still shows
  }
}

/** An "Enable alerts" button, shown while the agent has not decided; asking is their click. */
export function setupNotificationButton(button) {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", () => {
    button.hidden = true;
    Notification.requestPermission().catch(() => {});
  });
}

export function setUnreadTitle(total) {
  document.title = total > 0 ? `(${total}) ${BASE_TITLE}` : BASE_TITLE;
}
