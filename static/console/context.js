// Beside the focused chat: the customer's earlier tickets (agents may read them while chatting
// with the customer) and a knowledge-base search whose results go into the reply as links.

import { insertIntoComposer } from "./chats.js";
import { api, el, formatDateTime, label, snippetNodes } from "./lib.js";
import { on } from "./state.js";

let customerId = null;
let request = 0;
let openTicket = () => {};

export function initContext({ showTicket }) {
  openTicket = showTicket;
  on("focus", (session) => showCustomer(session?.customer_id || null));
  on("ticket", (ticket) => {
    if (customerId && ticket.customer_id === customerId) loadTickets(customerId);
  });
  document.getElementById("kb-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchKb(document.getElementById("kb-query").value.trim());
  });
}

function showCustomer(id) {
  if (id === customerId) return;
  customerId = id;
  if (!id) {
    box().replaceChildren(el("p", { class: "empty", text: "Open a chat to see the customer's earlier tickets." }));
    return;
  }
  box().replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  loadTickets(id);
}

function box() {
  return document.getElementById("customer-tickets");
}

async function loadTickets(id) {
  const mine = ++request;
  try {
    const page = await api("/api/v1/tickets", { query: { customer_id: id, limit: 10, sort: "-created_at" } });
    if (mine !== request) return;
    const first = page.items[0];
    const who = first ? [first.customer_name, first.customer_email].filter(Boolean).join(" · ") : "";
    box().replaceChildren(...[
      who ? el("p", { class: "customer-who", text: who }) : null,
      page.items.length
        ? el("ul", { class: "mini-list" }, page.items.map((ticket) => el("li", {},
          el("button", { type: "button", class: "mini-item", testid: "customer-ticket",
            dataset: { ticketId: ticket.id }, onclick: () => openTicket(ticket.id) },
          el("span", { class: "mini-title", text: ticket.subject }),
          el("span", { class: "mini-meta" },
            el("span", { class: "mono", text: ticket.ticket_number }),
            el("span", { class: `pill pill-${ticket.status}`, text: label(ticket.status) }),
            el("span", { class: "muted", text: formatDateTime(ticket.created_at) }))))))
        : el("p", { class: "empty", text: "No earlier tickets." }),
      page.total > page.items.length ? el("p", { class: "muted", text: `${page.total} tickets in all` }) : null,
    ].filter(Boolean));
  } catch (error) {
    if (mine === request) box().replaceChildren(el("p", { class: "empty", text: error.message }));
  }
}

async function searchKb(q) {
  const results = document.getElementById("kb-results");
  if (!q) {
    results.replaceChildren();
    return;
  }
  results.replaceChildren(el("li", { class: "muted", text: "Searching…" }));
  try {
    const page = await api("/api/v1/kb/search", { query: { q, limit: 8 } });
    results.replaceChildren(...(page.items.length ? page.items.map(kbResult)
      : [el("li", { class: "empty", text: "No articles found." })]));
  } catch (error) {
    results.replaceChildren(el("li", { class: "empty", text: error.message }));
  }
}

function kbResult(hit) {
  const link = `${location.origin}/help/articles/${hit.id}`;
  return el("li", { class: "kb-result", testid: "kb-result", dataset: { articleId: hit.id } },
    el("span", { class: "kb-title", text: hit.title }),
    el("p", { class: "kb-snippet" }, snippetNodes(hit.snippet)),
    el("div", { class: "kb-actions" },
      el("span", { class: "muted", text: hit.category || "" }),
      el("button", { type: "button", class: "btn btn-small", testid: "kb-insert", text: "Insert link",
        "aria-label": `Insert a link to “${hit.title}” into the reply`,
        onclick: () => insertIntoComposer(`${hit.title}: ${link}`) })));
}
