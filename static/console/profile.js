// The signed-in agent's own profile panel: the average of their ratings over the last 30 days
// and the latest ratings with comments (GET /api/v1/feedback, which shows agents their own).

import { api, el, formatDateTime, ratingNodes } from "./lib.js";
import { state } from "./state.js";

const RECENT = 5;
const WINDOW_DAYS = 30;

export function initProfile() {
  const toggle = document.getElementById("profile-toggle");
  const panel = document.getElementById("profile-panel");
  toggle.addEventListener("click", () => {
    const open = panel.hidden;
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) loadRatings();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      panel.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
}

async function loadRatings() {
  const summary = document.querySelector("[data-testid=my-rating-summary]");
  const list = document.querySelector("[data-testid=my-ratings]");
  const since = new Date(Date.now() - WINDOW_DAYS * 86400000).toISOString();
  try {
    const [figures, recent] = await Promise.all([
      api("/api/v1/feedback/analytics", { query: { agent_id: state.userId, from: since } }),
      api("/api/v1/feedback", { query: { agent_id: state.userId, sort: "-created_at", limit: RECENT } }),
    ]);
    summary.textContent = figures.count
      ? `${figures.average_rating.toFixed(1)} ★ average from ${figures.count} rating${figures.count === 1 ? "" : "s"} in the last ${WINDOW_DAYS} days`
      : `No ratings in the last ${WINDOW_DAYS} days yet.`;
    list.replaceChildren(...recent.items.map((f) => el("li", { class: "my-rating", testid: "my-rating" },
      ratingNodes({ rating: f.rating, comment: f.comment }),
      el("span", { class: "muted", text: ` · ${f.session_id ? "chat" : "ticket"} · ${formatDateTime(f.created_at)}` }))));
  } catch (error) {
    summary.textContent = error.message;
  }
}
