// Bookings beside the chat and the ticket: the customer's recent bookings from the Booking Service
// (GET /api/v1/customers/{id}/bookings), and in the ticket view a "Link to ticket" action
// (PUT / DELETE /api/v1/tickets/{id}/booking). The Booking Service is another team's and may be
// absent or slow: then the panel says "Bookings unavailable" in one quiet line, never an error.

import { api, el } from "./lib.js";
import { on } from "./state.js";

const RECENT = 5;
const UNAVAILABLE = "Bookings unavailable";

let chatCustomer = null;
let chatRequest = 0;

export function initBookings() {
  on("focus", (session) => showChatCustomer(session?.customer_id || null));
}

// ---------------------------------------------------------------- beside the chat

function chatBox() {
  return document.getElementById("customer-bookings");
}

function showChatCustomer(id) {
  if (id === chatCustomer) return;
  chatCustomer = id;
  const mine = ++chatRequest;
  if (!id) {
    chatBox().replaceChildren(el("p", { class: "empty", text: "Open a chat to see the customer's bookings." }));
    return;
  }
  chatBox().replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  loadBookings(id).then((page) => {
    if (mine === chatRequest) chatBox().replaceChildren(...bookingList(page));
  });
}

// ---------------------------------------------------------------- beside the ticket

/** The ticket view's "Bookings" section (filled by renderTicketBookings). */
export function ticketBookingsSection() {
  return el("section", { class: "ticket-section", "aria-labelledby": "ticket-bookings-heading" },
    el("h3", { class: "section-title", id: "ticket-bookings-heading", text: "Bookings" }),
    el("p", { class: "linked-booking", testid: "ticket-booking" }),
    el("div", { class: "ticket-bookings", testid: "ticket-bookings" }));
}

const views = new WeakMap();   // ticket-bookings box -> {ticketId, ticket (the latest), page}

/**
 * Show the ticket's linked booking and the customer's recent bookings with link / unlink
 * buttons. `act(button, work)` is the ticket view's way to run a change (work resolves to the
 * updated ticket). Called on every render of the ticket: the list loads once per ticket view.
 */
export function renderTicketBookings(ticket, act) {
  const linked = document.querySelector('[data-testid="ticket-booking"]');
  const box = document.querySelector('[data-testid="ticket-bookings"]');
  if (!linked || !box) return;
  const meta = ticket.metadata || {};
  linked.replaceChildren(...(meta.booking_id
    ? ["Linked: ", el("span", { class: "mono", text: meta.booking_reference || meta.booking_id }),
      meta.booking_verified === false ? el("span", { class: "muted", text: " (not verified)" }) : null]
    : [el("span", { class: "muted", text: "No booking linked." })]).filter(Boolean));
  let view = views.get(box);
  if (view && view.ticketId === ticket.id) {
    view.ticket = ticket;
    if (view.page) drawTicketList(box, view, act);
    return;
  }
  view = { ticketId: ticket.id, ticket, page: null };
  views.set(box, view);
  if (!ticket.customer_id) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  loadBookings(ticket.customer_id).then((page) => {
    if (views.get(box) !== view) return;   // another ticket since
    view.page = page;
    drawTicketList(box, view, act);
  });
}

function drawTicketList(box, { ticket, page }, act) {
  const linkedId = ticket.metadata?.booking_id || null;
  const path = `/api/v1/tickets/${ticket.id}/booking`;
  box.replaceChildren(...bookingList(page, (booking) => {
    const reference = booking.reference || booking.id;
    if (booking.id === linkedId) {
      return el("button", { type: "button", class: "btn btn-small", testid: "booking-unlink", text: "Unlink",
        "aria-label": `Unlink booking ${reference} from the ticket`,
        onclick: (event) => act(event.currentTarget, async () => {
          await api(path, { method: "DELETE" });
          return api(`/api/v1/tickets/${ticket.id}`);
        }) });
    }
    return el("button", { type: "button", class: "btn btn-small", testid: "booking-link", text: "Link to ticket",
      "aria-label": `Link booking ${reference} to the ticket`,
      onclick: (event) => act(event.currentTarget, () =>
        api(path, { method: "PUT", body: { booking_id: booking.id } })) });
  }, linkedId));
}

// ---------------------------------------------------------------- shared

/** The customer's recent bookings, or {available: false} when they cannot be had. */
async function loadBookings(customerId) {
  try {
    return await api(`/api/v1/customers/${customerId}/bookings`, { query: { limit: RECENT } });
  } catch {
    return { items: [], total: 0, available: false };   // quietly: bookings are a side panel
  }
}

function bookingList(page, action = null, linkedId = null) {
  if (!page.available) return [el("p", { class: "muted", testid: "bookings-unavailable", text: UNAVAILABLE })];
  if (!page.items.length) return [el("p", { class: "empty", testid: "bookings-empty", text: "No bookings." })];
  return [
    el("ul", { class: "mini-list", testid: "booking-list" }, page.items.map((b) => bookingItem(b, action, linkedId))),
    page.total > page.items.length ? el("p", { class: "muted", text: `${page.total} recent bookings in all` }) : null,
  ].filter(Boolean);
}

function bookingItem(booking, action, linkedId) {
  const status = booking.status || "";
  return el("li", {
    class: `booking-item${booking.id === linkedId ? " is-linked" : ""}`, testid: "booking",
    dataset: { bookingId: booking.id },
  },
  el("div", { class: "mini-meta" },
    el("span", { class: "mono booking-ref", testid: "booking-reference", text: booking.reference || booking.id }),
    status ? el("span", { class: `pill booking-${status}`, testid: "booking-status", text: statusText(status) }) : null),
  el("span", { class: "mini-title", testid: "booking-property", text: booking.property_name || "—" }),
  el("span", { class: "mini-meta" },
    el("span", { testid: "booking-dates", text: formatStay(booking.check_in, booking.check_out) }),
    el("span", { class: "booking-amount", testid: "booking-amount",
      text: formatAmount(booking.total_amount, booking.currency) })),
  action ? el("div", { class: "booking-actions" }, action(booking)) : null);
}

function statusText(status) {
  const text = status.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function formatDate(iso, withYear) {
  if (!iso) return "";
  const date = new Date(`${iso}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return String(iso);
  const options = { month: "short", day: "numeric", timeZone: "UTC" };
  if (withYear) options.year = "numeric";
  return date.toLocaleDateString([], options);
}

function formatStay(checkIn, checkOut) {
  if (!checkIn && !checkOut) return "";
  if (!checkOut) return formatDate(checkIn, true);
  return `${formatDate(checkIn, false)} – ${formatDate(checkOut, true)}`;
}

function formatAmount(amount, currency) {
  if (!amount) return "";
  const value = Number(amount);
  if (!currency || !Number.isFinite(value)) return [amount, currency].filter(Boolean).join(" ");
  try {
    return new Intl.NumberFormat([], { style: "currency", currency }).format(value);
  } catch {
    return `${amount} ${currency}`;   // a code Intl does not know
  }
}
