/*!
 * Support Service chat widget. No build step; embed with one tag:
 *
 *   <script src="https://support.example.com/static/widget.js" data-token="<customer JWT>" async></script>
 *
 * or call window.SupportWidget.init({token, ...}) (see OPTIONS below). Everything lives in a
 * shadow root, so the host page's CSS cannot reach it and its CSS cannot reach the host page.
 *
 * Delivery guarantees (PROTOCOL.md) come from delivery.js, the module the console uses too,
 * loaded from the same server with import() (an ES module: no global is left behind): every
 * outgoing message gets a client_msg_id before it is shown; it stays in an outbox (kept in
 * sessionStorage, so a reload keeps it too) until the server acknowledges it, and is resent
 * with the same id after a reconnect, so the server keeps it once. Messages are sent one at a
 * time so their order is the order typed. After every (re)connect, and on chat:resync, the
 * widget asks chat:sync for everything after the last seq it has; messages are keyed by seq, so
 * nothing shows twice. User text is only ever set with textContent. Replies to tickets go
 * through an outbox of their own the same way (POST /tickets/{id}/messages with the entry's
 * client_msg_id, which makes a resend return the stored message), and files wait in IndexedDB
 * until sent (widget-attachments.js).
 *
 * Test hooks: elements carry data-testid attributes (launcher, panel, message, composer, ...).
 */
(function () {
  "use strict";

  if (window.SupportWidget && window.SupportWidget.version) return;   // loaded twice: keep the first

  var SCRIPT = document.currentScript;
  var OPTIONS = {
    token: null,             // the customer's JWT (required)
    getToken: null,          // optional async () => fresh JWT, called when the token is refused
    serverUrl: null,         // defaults to the origin widget.js was loaded from
    socketPath: "/ws/chat",
    department: null,        // a fixed department (no "what is it about?" choice)
    departments: null,       // names offered in the choice; default: every public department
    title: "Support",
    subtitle: "We usually reply in a few minutes",
    prechat: true,           // ask subject/department/first message before a chat starts
    position: "right",       // or "left"
    accentColor: null,       // e.g. "#0b6bcb"
    open: false,             // open the panel at once
  };
  var SEND_TIMEOUT_MS = 10000;     // an unacknowledged send is retried on the next connection
  var REPLY_TIMEOUT_MS = 30000;    // a ticket reply's POST unanswered this long is resent (same client_msg_id)
  var TYPING_IDLE_MS = 3000;
  var AGENT_TYPING_SHOWN_MS = 8000;  // a "typing" whose "stopped" got lost does not stay forever
  var SUGGEST_DELAY_MS = 300;
  var RENEW_BEFORE_EXPIRY_MS = 60000;   // auth:refresh this long before the token's exp
  var LINK = /https?:\/\/[^\s<>"]+|\/help\/articles\/[0-9a-fA-F-]{36}/g;
  var MAX_MESSAGE = 5000;          // the server's limit for a chat message (never cut silently)
  var COUNTER_FROM = 4500;         // the character counter shows from here
  var DEFAULT_DEPARTMENT = "general";
  var SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ small DOM helpers

  /** h("div", {class: "x", testid: "y", onclick: f}, "text", child) — strings become text nodes. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    var key, value;
    for (key in attrs || {}) {
      value = attrs[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "testid") el.setAttribute("data-testid", value);
      else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
      else if (key === "text") el.textContent = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(parent, c); }); return; }
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function timeOf(iso) {
    var d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /** A moment in the reader's own locale and time zone, e.g. "Tuesday, 8 December 2026 at 04:04". */
  function dateTimeOf(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" }).format(d);
  }

  /** The chat-bubble icon of the launcher (inline SVG: no image request, no font). */
  function bubbleIcon() {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "launcher-icon");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  function minutes(seconds) {
    if (seconds === null || seconds === undefined) return null;
    var m = Math.max(1, Math.round(seconds / 60));
    return m === 1 ? "about a minute" : "about " + m + " minutes";
  }

  /** The token's exp in ms since the epoch, or null. */
  function jwtExpiry(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var exp = JSON.parse(atob(part)).exp;
      return typeof exp === "number" ? exp * 1000 : null;
    } catch (e) { return null; }
  }

  function jwtSubject(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).sub || "anonymous";
    } catch (e) { return "anonymous"; }
  }

  // ------------------------------------------------------------------ loading socket.io-client

  var ioPromise = null;

  /** The vendored socket.io-client, without leaving a global `io` behind or clashing with AMD. */
  function loadSocketIo(base) {
    if (ioPromise) return ioPromise;
    ioPromise = new Promise(function (resolve, reject) {
      var previous = window.io;
      var hadIo = "io" in window;
      var amd = typeof window.define === "function" && window.define.amd;
      if (amd) window.define.amd = undefined;            // make the UMD build take the global path
      var tag = document.createElement("script");
      tag.src = base + "/static/vendor/socket.io.min.js";
      tag.async = true;
      tag.onload = function () {
        var ours = window.io;
        if (amd) window.define.amd = amd;
        if (hadIo) window.io = previous; else delete window.io;
        resolve(ours);
      };
      tag.onerror = function () {
        if (amd) window.define.amd = amd;
        ioPromise = null;
        reject(new Error("could not load the chat library"));
      };
      (document.head || document.documentElement).appendChild(tag);
    });
    return ioPromise;
  }

  var Delivery = null;          // delivery.js's exports, once loaded
  var deliveryPromise = null;

  /** delivery.js (the chat delivery protocol, shared with the console) from the same server. */
  function loadDelivery(base) {
    if (!deliveryPromise) {
      deliveryPromise = import(base + "/static/delivery.js").then(function (module) {
        Delivery = module;
        return module;
      }, function (err) {
        deliveryPromise = null;
        throw err;
      });
    }
    return deliveryPromise;
  }

  /** A client_msg_id (chat:start's); delivery.js gives the outbox's its own. */
  function uuid() { return Delivery.newClientMsgId(); }

  var attachmentsPromise = null;

  /** widget-attachments.js (files in chats) from the same server; the chat works without it. */
  function loadAttachments(widget) {
    if (!attachmentsPromise) {
      attachmentsPromise = new Promise(function (resolve) {
        if (window.SupportWidgetAttachments) { resolve(window.SupportWidgetAttachments); return; }
        var tag = document.createElement("script");
        tag.src = widget.base + "/static/widget-attachments.js";
        tag.async = true;
        tag.onload = function () { resolve(window.SupportWidgetAttachments || null); };
        tag.onerror = function () { resolve(null); };
        (document.head || document.documentElement).appendChild(tag);
      }).then(function (ext) {
        if (ext) ext.install(Widget.prototype, { h: h, uuid: uuid });
        return ext;
      });
    }
    return attachmentsPromise;
  }

  // ------------------------------------------------------------------ the widget

  function Widget(options) {
    this.o = options;
    this.base = (options.serverUrl || (SCRIPT && SCRIPT.src ? new URL(SCRIPT.src).origin : location.origin)).replace(/\/$/, "");
    this.token = options.token;
    this.storeKey = "support-widget:" + jwtSubject(this.token);
    this.socket = null;
    this.connected = false;
    this.session = null;          // the open (or last) Session
    this.restored = this.loadOutbox("outbox");   // outbox entries kept across a reload, until their chat is back
    this.ticketOutbox = this.loadOutbox("ticket-outbox");   // ticket replies not acknowledged yet, with ticket_id
    this.ticketSending = false;
    this.clearChat(null);
    this.unread = 0;
    this.isOpen = false;
    this.view = "home";
    this.avail = null;            // department name -> availability row (chat:watch_availability)
    this.department = this.o.department || (this.o.departments && this.o.departments.length === 1
      ? this.o.departments[0] : this.loadChoice());
    this.viewChosen = false;      // the customer picked "leave a message" themselves: availability keeps out
    this.draft = { subject: "", message: "" };   // shared by the pre-chat and offline forms
    this.shownArticles = [];      // ids the pre-chat form suggested (the greeting skips them)
    this.tickets = {};            // id -> ticket
    this.ticketId = null;         // the ticket open in the "ticket" view
    this.ticketMessages = [];
    this.ratedSessions = {};
    this.typingTimer = null;
    this.typingSent = false;
    this.build();
  }

  /** An outbox as a reload left it: entries refused for good stay "not sent", the rest resume. */
  Widget.prototype.loadOutbox = function (name) {
    try {
      return JSON.parse(sessionStorage.getItem(this.storeKey + ":" + name) || "[]").map(function (m) {
        m.state = m.final ? "failed" : "sending";
        return m;
      });
    } catch (e) { return []; }
  };

  /** The current chat's outbox (delivery.js), then what a reload kept for another chat. */
  Widget.prototype.pending = function () {
    return (this.delivery ? this.delivery.outbox : []).concat(this.restored);
  };

  /** Both outboxes into sessionStorage: ids, text, and for files their names and upload ids.
   *  Their bytes wait in IndexedDB (widget-attachments.js) while their entry is still to be sent:
   *  those of entries gone (acknowledged, dropped with their chat) or refused for good go. */
  Widget.prototype.saveOutbox = function () {
    var live = {};
    function entry(m) {
      var out = { client_msg_id: m.client_msg_id, message: m.message, session_id: m.session_id || null,
                  ticket_id: m.ticket_id || undefined,
                  files: m.files ? m.files.map(function (f) { return { id: f.id, name: f.name, size: f.size, type: f.type }; }) : undefined };
      if (m.state === "failed" && m.final) { out.final = true; out.error = m.error; }
      else live[m.client_msg_id] = true;
      return out;
    }
    try {
      sessionStorage.setItem(this.storeKey + ":outbox", JSON.stringify(this.pending().map(entry)));
      sessionStorage.setItem(this.storeKey + ":ticket-outbox", JSON.stringify(this.ticketOutbox.map(entry)));
    } catch (e) { /* storage full or blocked: the outbox still lives in memory */ }
    if (this.releaseFiles) this.releaseFiles(live);
  };

  // ---------------------------------------------------------------- skeleton

  Widget.prototype.build = function () {
    var self = this;
    this.host = h("div", { id: "support-widget", "data-position": this.o.position });
    this.host.style.display = "none";        // until the stylesheet has loaded (no unstyled flash)
    this.root = this.host.attachShadow({ mode: "open" });
    var css = h("link", { rel: "stylesheet", href: this.base + "/static/widget.css" });
    css.addEventListener("load", function () { self.host.style.display = ""; });
    css.addEventListener("error", function () { self.host.style.display = ""; });
    this.badge = h("span", { class: "badge", testid: "unread-badge", hidden: true });
    this.launcher = h("button", {
      class: "launcher", testid: "launcher", type: "button", "aria-label": "Open support chat",
      "aria-expanded": "false", "aria-controls": "sw-panel", onclick: function () { self.toggle(); },
    }, bubbleIcon(), this.badge);
    this.status = h("p", { class: "conn", testid: "conn-status", role: "status", hidden: true });
    this.body = h("div", { class: "body" });
    this.tabs = h("nav", { class: "tabs", "aria-label": "Support" },
      this.tabButton("chat", "Chat"), this.tabButton("tickets", "My tickets"));
    this.panel = h("section", {
      id: "sw-panel", class: "panel", testid: "panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "sw-title", hidden: true,
      onkeydown: function (e) { if (e.key === "Escape") self.close(); },
    },
      h("header", { class: "head" },
        h("div", { class: "head-text" },
          h("h2", { id: "sw-title", text: this.o.title }),
          this.agentLine = h("p", { class: "sub", testid: "agent-line", text: this.o.subtitle })),
        h("button", { class: "close", type: "button", testid: "close", "aria-label": "Close chat",
                      onclick: function () { self.close(); } }, "\u00d7")),
      this.tabs, this.status, this.body);
    if (this.o.accentColor) this.host.style.setProperty("--sw-accent", this.o.accentColor);
    append(this.root, [css, this.panel, this.launcher]);
    document.body.appendChild(this.host);
  };

  Widget.prototype.tabButton = function (view, label) {
    var self = this;
    return h("button", { type: "button", class: "tab", testid: "tab-" + view, "data-view": view,
                         onclick: function () { self.viewChosen = false; self.show(view === "chat" ? self.chatView() : view); } }, label);
  };

  Widget.prototype.toggle = function () { if (this.isOpen) this.close(); else this.open(); };

  Widget.prototype.open = function () {
    this.isOpen = true;
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", "Close support chat");
    this.unread = 0;
    this.renderBadge();
    this.show(this.view === "home" ? this.chatView() : this.view);
    this.watchAvailability();
    this.markRead();
    this.focusFirst();
  };

  Widget.prototype.close = function () {
    this.isOpen = false;
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", "Open support chat");
    this.launcher.focus();
  };

  /** The chat tab's view for the current state: the chat; else the "what is it about?" choice
   *  while the department is open; else the department's offline form when nobody can chat in
   *  it (or the customer asked for it); else the pre-chat form. */
  Widget.prototype.chatView = function () {
    var s = this.session;
    if (s && (s.status === "queued" || s.status === "active")) return "chat";
    if (s && this.view === "chat") return "chat";        // an ended chat stays visible with its rating
    if (!this.department) return this.avail ? "topic" : "prechat";
    if (this.viewChosen && this.view === "offline") return "offline";
    var d = this.avail && this.avail[this.department];
    return d && !d.available ? "offline" : "prechat";
  };

  Widget.prototype.show = function (view) {
    this.view = view;
    Array.prototype.forEach.call(this.tabs.children, function (b) {
      var current = b.getAttribute("data-view") === (view === "tickets" || view === "ticket" ? "tickets" : "chat");
      b.setAttribute("aria-current", current ? "page" : "false");
    });
    var hadFocus = this.isOpen && this.root.activeElement !== null;
    clear(this.body);
    this.list = this.ticketList = this.ticketView = this.ticketListEl = null;
    if (view === "prechat") this.renderPrechat();
    else if (view === "topic") this.renderTopic();
    else if (view === "offline") this.renderOffline();
    else if (view === "tickets") this.renderTickets();
    else if (view === "ticket") this.renderTicket();
    else this.renderChat();
    if (hadFocus && this.root.activeElement === null) this.focusFirst();   // the focused field was replaced
  };

  Widget.prototype.focusFirst = function () {
    var target = this.body.querySelector("textarea, input, select, button") || this.panel.querySelector(".close");
    target.focus();
  };

  // ---------------------------------------------------------------- connection

  Widget.prototype.start = function () {
    var self = this;
    return Promise.all([loadSocketIo(this.base), loadDelivery(this.base), loadAttachments(this)]).then(function (loaded) {
      var io = loaded[0];
      self.socket = io(self.base + "/customer", {
        path: self.o.socketPath, auth: function (cb) { cb({ token: self.token }); },
        transports: ["websocket", "polling"], tryAllTransports: true,
        reconnectionDelay: 500, reconnectionDelayMax: 5000,
      });
      self.listen(self.socket);
      self.flushTickets();   // replies a reload interrupted (REST: no socket needed)
      if (self.o.open) self.open();
    }).catch(function (err) { self.setStatus("Chat is unavailable: " + err.message); });
  };

  Widget.prototype.listen = function (socket) {
    var self = this;
    socket.on("connect", function () { self.onConnect(); });
    socket.on("disconnect", function (reason) {
      self.connected = false;
      if (self.delivery) self.delivery.interrupt();   // resent with the same id after the reconnect
      self.setStatus("Reconnecting\u2026");
      if (reason === "io server disconnect") socket.connect();   // e.g. a replica shutting down
    });
    socket.on("connect_error", function (err) { self.onConnectError(err); });
    socket.on("chat:session", function (s) { self.adoptSession(s); });
    socket.on("chat:assigned", function (p) { self.adoptSession(p.session); });
    socket.on("chat:transferred", function (p) { self.adoptSession(p.session); });
    socket.on("chat:queue_position", function (p) { self.onQueuePosition(p); });
    socket.on("chat:message", function (m) { self.receive([m]); });
    socket.on("chat:typing", function (p) { self.onTyping(p); });
    socket.on("chat:read", function (p) { self.onRead(p); });
    socket.on("chat:ended", function (p) { self.onEnded(p); });
    socket.on("chat:availability", function (p) { self.onAvailability(p); });
    socket.on("chat:resync", function (p) {   // live pushes may have been missed: fetch what is new
      if (self.delivery && self.connected) self.delivery.resync((p && p.session_ids) || []);
    });
    ["ticket:created", "ticket:updated", "ticket:escalated", "ticket:assigned"].forEach(function (name) {
      socket.on(name, function (p) { self.onTicket(p.ticket); });
    });
    socket.on("ticket:message", function (p) { self.onTicketMessage(p); });
  };

  Widget.prototype.onConnect = function () {
    var self = this;
    this.connected = true;
    this.refusedAfterRefresh = false;
    this.setStatus(null);
    var catchUp = this.session ? this.sync() : Promise.resolve();
    catchUp.then(function () { self.flush(); });
    this.flushTickets();
    if (this.isOpen) this.watchAvailability();
    this.scheduleRenewal();
    if (this.view === "tickets") this.loadTickets();
    if (this.view === "ticket") this.loadTicket();
  };

  Widget.prototype.onConnectError = function (err) {
    var self = this;
    var code = err && err.data && err.data.code;
    if (code === "unauthorized" && typeof this.o.getToken === "function" && !this.refusedAfterRefresh) {
      this.refreshToken().then(function () {
        self.refusedAfterRefresh = true;       // a fresh token refused too: stop asking
        self.socket.connect();
      }).catch(function () { self.setStatus("Your session has expired. Reload the page to chat."); });
      return;
    }
    if (code === "unauthorized" || code === "forbidden") {
      this.setStatus("You need to be signed in to chat with us.");
      return;   // socket.io does not retry a refused connection; nor do we
    }
    this.setStatus(code === "server_full" ? "Busy right now, retrying\u2026" : "Reconnecting\u2026");
    if (code === "server_full") setTimeout(function () { self.socket.connect(); }, 3000);
  };

  Widget.prototype.setStatus = function (text) {
    this.status.hidden = !text;
    this.status.textContent = text || "";
  };

  /** Promise of the ack's data; rejects with the ack's error ({code, message, details}). */
  Widget.prototype.call = function (event, payload) {
    var socket = this.socket;
    return new Promise(function (resolve, reject) {
      if (!socket || !socket.connected) { reject({ code: "offline", message: "Not connected" }); return; }
      socket.timeout(SEND_TIMEOUT_MS).emit(event, payload, function (err, reply) {
        if (err) reject({ code: "timeout", message: "No answer from the server" });
        else if (reply && reply.ok) resolve(reply.data || {});
        else reject((reply && reply.error) || { code: "internal", message: "Unexpected reply" });
      });
    });
  };

  /** A REST call with the customer's token; a 401 asks getToken (if given) once and retries. */
  Widget.prototype.rest = function (method, path, body, retried) {
    var self = this;
    var headers = { Authorization: "Bearer " + this.token, Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    return fetch(this.base + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (response) {
        if (response.status === 401 && !retried && typeof self.o.getToken === "function") {
          return self.refreshToken().then(function () { return self.rest(method, path, body, true); });
        }
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) {
            throw { code: String(response.status), status: response.status, message: data.detail || response.statusText,
                    retryAfter: Number(response.headers.get("Retry-After")) || null };
          }
          return data;
        });
      });
  };

  /** A minute before the token expires, a fresh one from getToken replaces it on the live socket
   * (auth:refresh), so the server never ends the socket for an expired token. Without getToken
   * the socket ends at expiry and the reconnect is refused like any expired token. */
  Widget.prototype.scheduleRenewal = function () {
    var self = this;
    clearTimeout(this.renewTimer);
    var expires = jwtExpiry(this.token);
    if (typeof this.o.getToken !== "function" || expires === null) return;
    var delay = Math.max(5000, expires - Date.now() - RENEW_BEFORE_EXPIRY_MS);
    this.renewTimer = setTimeout(function () {
      if (!self.connected) return;   // the next connect schedules it again
      self.refreshToken().then(function () {
        return self.call("auth:refresh", { token: self.token });
      }).then(function () { self.scheduleRenewal(); }, function () { /* the reconnect path copes */ });
    }, delay);
  };

  /** One getToken call at a time, shared by the socket and REST calls waiting for it. */
  Widget.prototype.refreshToken = function () {
    var self = this;
    if (!this.refreshing) {
      this.refreshing = Promise.resolve(this.o.getToken()).then(function (fresh) {
        if (!fresh) throw new Error("no token");
        self.token = fresh;
      }).finally(function () { self.refreshing = null; });
    }
    return this.refreshing;
  };

  // ---------------------------------------------------------------- session and messages

  Widget.prototype.adoptSession = function (session) {
    if (!session) return;
    var changedSession = !this.session || this.session.id !== session.id;
    if (changedSession) {
      if (this.session && (this.session.status === "queued" || this.session.status === "active")
          && session.status !== "queued" && session.status !== "active") return;   // a stale push about an old chat
      this.clearChat(session.id);
    }
    var wasAgent = this.session && this.session.agent && this.session.agent.id;
    this.session = session;
    this.agentReadSeq = Math.max(this.agentReadSeq, session.agent_last_read_seq || 0);
    if (changedSession && this.connected) this.sync().then(this.flush.bind(this));
    if (session.agent && session.agent.id !== wasAgent && session.status === "active") {
      this.systemNote(session.agent.display_name + " joined the chat");
    }
    this.renderSessionState();
    if (this.view === "prechat" || this.view === "home") { if (this.isOpen) this.show("chat"); else this.view = "chat"; }
  };

  /** The delivery of one chat (delivery.js): its messages by seq, its outbox, chat:sync. */
  Widget.prototype.newDelivery = function (sessionId) {
    var self = this;
    var mine = this.restored.filter(function (p) { return !p.session_id || p.session_id === sessionId; });
    this.restored = this.restored.filter(function (p) { return mine.indexOf(p) < 0; });
    return new Delivery.Delivery({
      sessionId: sessionId,
      outbox: mine,
      call: function (event, payload) { return self.call(event, payload); },
      connected: function () { return self.connected; },
      mine: function (m) { return m.sender_type === "customer"; },
      // Files first (widget-attachments.js): a message waits in the outbox until they are uploaded.
      prepare: function (entry) { return self.uploadFiles ? self.uploadFiles(entry) : Promise.resolve(); },
      onMessages: function (added, info) { self.onMessages(added, info.settled); },
      onOutbox: function () { self.saveOutbox(); self.renderMessages(); },
      onPage: function (data) {
        self.session = data.session || self.session;
        self.renderSessionState();
        if (self.session.status !== "queued" && self.session.status !== "active") self.failOutbox();
      },
    });
  };

  /** Everything after the last contiguous seq, page by page (has_more); errors wait for the next connect. */
  Widget.prototype.sync = function () {
    return this.delivery ? this.delivery.sync() : Promise.resolve();
  };

  /** Messages from the server (push, ack or sync): keyed by seq, so repeats change nothing. */
  Widget.prototype.receive = function (list) {
    if (this.delivery) this.delivery.receive(list);
  };

  /** The highest seq of the current chat. */
  Widget.prototype.lastSeq = function () {
    return this.delivery ? this.delivery.lastSeq : 0;
  };

  Widget.prototype.onMessages = function (added, settled) {
    var self = this, fresh = 0;
    added.forEach(function (m) {
      if (m.sender_type !== "customer") {
        self.setAgentTyping(false);
        if (m.seq > (self.session.customer_last_read_seq || 0)) fresh++;   // not what was read before a reload
      }
    });
    if (settled) this.saveOutbox();
    if (this.view === "chat") this.renderMessages();
    if (fresh) {
      if (this.isOpen && document.visibilityState !== "hidden") this.markRead();
      else { this.unread += fresh; this.renderBadge(); }
    }
  };

  Widget.prototype.markRead = function () {
    var last = this.lastSeq();
    if (!this.session || !this.connected || !last || this.session.status !== "active") return;
    if ((this.session.customer_last_read_seq || 0) >= last) return;
    this.session.customer_last_read_seq = last;
    this.call("chat:read", { session_id: this.session.id, up_to_seq: last }).catch(function () {});
  };

  /** Queue a message: shown at once as "sending", delivered in order when connected. */
  Widget.prototype.send = function (text) {
    text = text.trim();
    if (!text) return;
    this.stopTyping();
    this.queue({ message: text });
  };

  /** Put an entry ({message, files?}) in the current chat's outbox and send it in its turn. */
  Widget.prototype.queue = function (entry) {
    if (!this.delivery) return;
    entry.session_id = this.session.id;
    this.delivery.enqueue(entry);
    this.saveOutbox();
    this.renderMessages();
  };

  /** Send the outbox one message at a time (delivery.js); a chat that closed fails it instead. */
  Widget.prototype.flush = function () {
    if (!this.delivery || !this.session) return;
    if (this.session.status !== "queued" && this.session.status !== "active") { this.failOutbox(); return; }
    this.delivery.flush();
  };

  /** The chat closed with messages still unsent: say so rather than leave them "sending". */
  Widget.prototype.failOutbox = function () {
    if (this.delivery) this.delivery.failAll("the chat ended before it could be sent");
  };

  /** "Retry" of a chat message (delivery.js) or of a ticket reply. */
  Widget.prototype.retry = function (clientMsgId) {
    var reply = this.ticketOutbox.filter(function (p) { return p.client_msg_id === clientMsgId; })[0];
    if (!reply) { if (this.delivery) this.delivery.retry(clientMsgId); return; }
    reply.state = "sending";
    reply.error = null;
    this.renderTicketMessages();
    this.flushTickets();
  };

  Widget.prototype.startChat = function (form) {
    var self = this;
    var payload = { client_msg_id: uuid(), message: form.message,
                    metadata: { page: location.href.slice(0, 100), source: "widget",
                                shown_articles: this.shownArticles.slice(-20) } };
    if (form.subject) payload.subject = form.subject;
    if (form.department) payload.department = form.department;
    return this.call("chat:start", payload).then(function (data) {
      self.adoptSession(data.session);
      if (data.message) self.receive([data.message]);
      self.show("chat");
    });
  };

  Widget.prototype.forgetSession = function () {
    this.session = null;
    this.clearChat(null);
    this.saveOutbox();
  };

  /** What the widget holds about one chat's conversation (its delivery: messages by seq and the
   *  outbox), emptied for another chat. */
  Widget.prototype.clearChat = function (sessionId) {
    if (this.delivery) this.delivery.close();
    this.delivery = sessionId && Delivery ? this.newDelivery(sessionId) : null;
    this.agentReadSeq = 0;        // the agent's read receipt: "Seen" up to here
    this.notes = [];              // local notes ("Alex joined the chat"), each after a seq
    this.endReason = null;
  };

  Widget.prototype.endChat = function () {
    var self = this;
    if (!this.session) return;
    this.call("chat:end", { session_id: this.session.id }).then(function (data) {
      self.adoptSession(data.session);     // re-renders the footer: the rating form
    }, function (error) { self.flash(error.message); });
  };

  // ---------------------------------------------------------------- pushes

  Widget.prototype.onQueuePosition = function (p) {
    if (!this.session || p.session_id !== this.session.id) return;
    this.session.queue_position = p.queue_position;
    this.session.estimated_wait_seconds = p.estimated_wait_seconds;
    this.renderSessionState();
  };

  Widget.prototype.onTyping = function (p) {
    if (this.session && p.session_id === this.session.id && p.sender_type !== "customer") this.setAgentTyping(p.typing);
  };

  Widget.prototype.onRead = function (p) {
    if (!this.session || p.session_id !== this.session.id || p.reader_type === "customer") return;
    this.agentReadSeq = Math.max(this.agentReadSeq, p.up_to_seq);
    if (this.view === "chat") this.renderMessages();
  };

  Widget.prototype.onEnded = function (p) {
    if (!this.session || p.session.id !== this.session.id) return;
    this.session = p.session;
    this.endReason = p.reason;
    this.setAgentTyping(false);
    this.failOutbox();
    if (this.view === "chat" || this.view === "home") this.show("chat");
    if (!this.isOpen) { this.unread += 1; this.renderBadge(); }
  };

  Widget.prototype.onTicket = function (ticket) {
    if (!ticket) return;
    var before = this.tickets[ticket.id];
    this.tickets[ticket.id] = ticket;
    if (this.view === "tickets") this.renderTicketList();
    if (this.view === "ticket" && this.ticketId === ticket.id && (!before || before.status !== ticket.status)) {
      var status = this.ticketView && this.ticketView.querySelector("[data-testid=ticket-view-status]");
      if (status) { status.textContent = ticket.status.replace("_", " "); status.className = "status status-" + ticket.status; }
      if (!before || (before.status === "closed") !== (ticket.status === "closed") || (before.status === "resolved") !== (ticket.status === "resolved")) {
        var draft = this.ticketView.querySelector("[data-testid=ticket-reply]").value;
        this.show("ticket");
        this.ticketView.querySelector("[data-testid=ticket-reply]").value = draft;
      }
    }
  };

  // ---------------------------------------------------------------- department and availability

  /** The department the customer chose earlier in this tab (kept across reloads). */
  Widget.prototype.loadChoice = function () {
    try { return sessionStorage.getItem(this.storeKey + ":department") || null; } catch (e) { return null; }
  };

  Widget.prototype.choose = function (name) {
    this.department = name;
    try {
      if (name) sessionStorage.setItem(this.storeKey + ":department", name);
      else sessionStorage.removeItem(this.storeKey + ":department");
    } catch (e) { /* blocked storage: the choice lasts until a reload */ }
    this.viewChosen = false;
    this.show(this.chatView());
  };

  /** Departments offered in the choice: the embed's list, else every public one. */
  Widget.prototype.offered = function () {
    var self = this;
    return Object.keys(this.avail || {}).map(function (k) { return self.avail[k]; }).filter(function (d) {
      return !self.o.departments || self.o.departments.indexOf(d.name) >= 0;
    }).sort(function (a, b) { return (a.display_name || a.name).localeCompare(b.display_name || b.name); });
  };

  /** Ask the server for the availability of the widget's departments and to push changes
   *  (chat:watch_availability; chat:availability pushes follow while this socket lives). */
  Widget.prototype.watchAvailability = function () {
    var self = this;
    if (!this.connected) return;
    var names = this.o.department ? [this.o.department] : this.o.departments;
    this.call("chat:watch_availability", names ? { departments: names } : {}).then(function (data) {
      self.onAvailability(data, true);
    }, function () {
      if (self.avail) return;
      self.rest("GET", "/api/v1/chat/availability").then(function (data) { self.onAvailability(data, true); },
        function () { self.onAvailability({ departments: [] }, true); });
    });
  };

  /** An availability answer or push: the view follows it only where the customer did not
   *  choose otherwise (a late answer never leaves "My tickets" or a form they asked for). */
  Widget.prototype.onAvailability = function (data, complete) {
    var self = this;
    if (complete || !this.avail) this.avail = {};
    (data.departments || []).forEach(function (d) { self.avail[d.name] = d; });
    if (complete && !this.o.department && this.department && !this.avail[this.department]) {
      this.department = null;               // a choice remembered from an embed that no longer offers it
    }
    if (!this.department) {
      var offered = this.offered();
      if (offered.length === 1) this.department = offered[0].name;
      else if (!offered.length && complete) this.department = DEFAULT_DEPARTMENT;
    }
    var mine = this.departmentRow(this.department);
    this.panel.setAttribute("data-available", mine ? String(!!mine.available) : "unknown");   // a test hook
    if (this.view === "topic") this.show(this.department ? this.chatView() : "topic");
    else if ((this.view === "prechat" || this.view === "offline") && !this.viewChosen && this.chatView() !== this.view) {
      this.show(this.chatView());
    } else if (this.availabilityNote) this.availabilityNote();
  };

  Widget.prototype.departmentRow = function (name) {
    return (this.avail && this.avail[name]) || null;
  };

  Widget.prototype.departmentLabel = function (name) {
    var d = this.departmentRow(name);
    return (d && d.display_name) || name;
  };

  // ---------------------------------------------------------------- views: topic choice

  Widget.prototype.renderTopic = function () {
    var self = this;
    var list = h("ul", { class: "topics", "aria-labelledby": "sw-topic-title" });
    this.offered().forEach(function (d) {
      list.appendChild(h("li", {}, h("button", {
        type: "button", class: "topic-choice", testid: "topic-choice", "data-name": d.name,
        onclick: function () { self.choose(d.name); },
      }, h("span", { class: "topic-name", text: d.display_name || d.name }),
         h("span", { class: "topic-state" + (d.available ? " on" : ""), testid: "topic-state",
                     text: d.available ? "Chat now" : "Leave a message" }))));
    });
    append(this.body, h("div", { class: "form", testid: "topic" },
      h("h3", { id: "sw-topic-title", class: "form-title", text: "What is it about?" }), list));
  };

  /** "Billing · change" above a form, when the customer chose among several departments. */
  Widget.prototype.topicLine = function () {
    var self = this;
    if (this.o.department || this.offered().length < 2 || !this.department) return null;
    return h("p", { class: "topic-line", testid: "topic-line" }, "Topic: ",
      h("strong", { text: this.departmentLabel(this.department) }), " ",
      h("button", { type: "button", class: "link inline", testid: "change-topic",
                    onclick: function () { self.choose(null); } }, "change"));
  };

  // ---------------------------------------------------------------- views: pre-chat

  Widget.prototype.renderPrechat = function () {
    var self = this;
    var box = h("form", { class: "form", testid: "prechat", novalidate: true });
    var note = h("p", { class: "hint", testid: "availability", text: "Checking who is around\u2026" });
    var subject = h("input", { id: "sw-subject", name: "subject", maxlength: "255", testid: "prechat-subject",
                               autocomplete: "off", value: this.draft.subject });
    var message = h("textarea", { id: "sw-message", name: "message", rows: "4", required: true,
                                  testid: "prechat-message", placeholder: "Tell us what you need" });
    message.value = this.draft.message;
    var counter = this.counter(message);
    var suggestions = h("ul", { class: "suggestions", testid: "kb-suggestions", "aria-label": "Articles that may help", hidden: true });
    var error = h("p", { class: "error", role: "alert", testid: "prechat-error", hidden: true });
    var submit = h("button", { type: "submit", class: "primary", testid: "start-chat" }, "Start chat");
    append(box, [this.topicLine(), note,
      h("div", { class: "field" }, h("label", { for: "sw-subject", text: "Subject (optional)" }), subject),
      h("div", { class: "field" }, h("label", { for: "sw-message", text: "How can we help?" }), message, counter),
      suggestions, error, submit,
      h("button", { type: "button", class: "link", testid: "leave-message-link",
                    onclick: function () { self.viewChosen = true; self.show("offline"); } }, "Leave a message instead")]);
    subject.addEventListener("input", function () { self.draft.subject = subject.value; });
    message.addEventListener("input", function () { self.draft.message = message.value; });
    message.addEventListener("input", this.debounce(function () { self.suggest(message.value, suggestions); }, SUGGEST_DELAY_MS));
    message.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); box.requestSubmit(); }
    });
    box.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!message.value.trim()) { self.showError(error, "Please write a message."); message.focus(); return; }
      if (message.value.length > MAX_MESSAGE) { self.showError(error, "Your message is too long."); message.focus(); return; }
      submit.disabled = true;
      self.startChat({ subject: subject.value.trim(), message: message.value.trim(), department: self.department })
        .then(function () { self.draft = { subject: "", message: "" }; },
              function (err) { submit.disabled = false; self.showError(error, err.message || "Could not start the chat"); });
    });
    if (!this.o.prechat) subject.parentNode.hidden = true;
    this.body.appendChild(box);
    this.availabilityNote = function () {
      if (!note.isConnected) { self.availabilityNote = null; return; }
      var d = self.departmentRow(self.department);
      note.textContent = d ? self.availabilityText([d]) : self.avail ? "Our team will answer as soon as possible."
        : "Checking who is around\u2026";
    };
    this.availabilityNote();
  };

  Widget.prototype.availabilityText = function (open) {
    function sum(field) { return open.reduce(function (n, d) { return n + (d[field] || 0); }, 0); }
    var queued = sum("queued");
    if (queued) return queued + (queued === 1 ? " person is" : " people are") + " waiting; an agent will be with you shortly.";
    if (!sum("free_places")) return "Our team is busy right now; you will be first in line.";
    return "Our team is online.";
  };

  /** A character counter under a text field: shown near MAX_MESSAGE, an error past it (the
   *  text is never cut: the field has no maxlength, sending refuses until it is shorter). */
  Widget.prototype.counter = function (field, max) {
    max = max || MAX_MESSAGE;
    var el = h("p", { class: "counter", testid: "char-counter", "aria-live": "polite", hidden: true });
    function update() {
      var n = field.value.length;
      el.hidden = n < Math.min(COUNTER_FROM, max - 500);
      el.classList.toggle("over", n > max);
      el.textContent = n > max ? (n - max).toLocaleString() + " characters too many (" + max.toLocaleString() + " at most)"
        : n.toLocaleString() + " / " + max.toLocaleString();
      field.setAttribute("aria-invalid", n > max ? "true" : "false");
    }
    field.addEventListener("input", update);
    el.update = update;
    update();
    return el;
  };

  Widget.prototype.suggest = function (text, list) {
    var self = this;
    text = text.trim();
    if (text.length < 4) { list.hidden = true; return; }
    this.rest("GET", "/api/v1/kb/related?limit=3&text=" + encodeURIComponent(text.slice(0, 1000))).then(function (data) {
      clear(list);
      (data.items || []).forEach(function (a) {
        if (self.shownArticles.indexOf(String(a.id)) < 0) self.shownArticles.push(String(a.id));
        list.appendChild(h("li", {}, h("button", {
          type: "button", class: "suggestion", testid: "kb-suggestion",
          onclick: function () { self.openArticle(a.id, list); },
        }, a.title)));
      });
      list.hidden = !list.children.length;
    }, function () { list.hidden = true; });
  };

  Widget.prototype.openArticle = function (id, after) {
    var self = this;
    this.rest("GET", "/api/v1/kb/articles/" + encodeURIComponent(id)).then(function (article) {
      var old = self.body.querySelector(".article");
      if (old) old.remove();
      var text = article.content_format === "html" ? htmlToText(article.content) : article.content;
      after.insertAdjacentElement("afterend", h("article", { class: "article", testid: "kb-article" },
        h("h3", { text: article.title }), h("p", { text: text }),
        h("button", { type: "button", class: "link", onclick: function (e) { e.target.parentNode.remove(); } }, "Close article")));
    });
  };

  // ---------------------------------------------------------------- views: chat

  Widget.prototype.renderChat = function () {
    var self = this;
    this.banner = h("div", { class: "banner", testid: "queue-status", role: "status" });
    this.list = h("ol", { class: "messages", testid: "messages", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Messages" });
    this.typingLine = h("p", { class: "typing", testid: "typing", hidden: true });
    this.footer = h("div", { class: "footer" });
    append(this.body, [this.banner, this.list, this.typingLine, this.footer]);
    this.followEnd(this.list);
    this.renderMessages();
    this.renderSessionState();
  };

  /** Keep a scrolling list at its newest item while the reader is there: through re-renders
   *  and through the banner, footer or typing line changing size (a ResizeObserver), so the
   *  newest message is at the visible end after a reload too. Scrolled up, it stays put. */
  Widget.prototype.followEnd = function (list) {
    var atEnd = true, ours = null;
    list.addEventListener("scroll", function () {
      // A scroll we made (its event can arrive after the list shrank again) says nothing about
      // where the reader is; only their own scrolling moves them away from the end.
      if (ours !== null && Math.abs(list.scrollTop - ours) < 2) return;
      ours = null;
      atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    });
    list.scrollToEnd = function (force) {
      if (!force && !atEnd) return;
      list.scrollTop = list.scrollHeight;
      ours = list.scrollTop;
      atEnd = true;
    };
    if (window.ResizeObserver) new ResizeObserver(function () { list.scrollToEnd(); }).observe(list);
  };

  Widget.prototype.renderSessionState = function () {
    var s = this.session;
    if (s && s.agent && s.status === "active") this.agentLine.textContent = "You are chatting with " + s.agent.display_name;
    else this.agentLine.textContent = this.o.subtitle;
    if (this.view !== "chat" || !this.banner) return;
    clear(this.banner);
    this.banner.hidden = true;
    if (s && s.status === "queued") {
      var wait = minutes(s.estimated_wait_seconds);
      this.banner.hidden = false;
      append(this.banner, [
        h("strong", { text: s.queue_position ? "You are number " + s.queue_position + " in the queue" : "Waiting for an agent" }),
        wait ? h("span", { testid: "queue-wait", text: " \u00b7 " + wait }) : null]);
    }
    this.renderFooter();
  };

  Widget.prototype.renderFooter = function () {
    var self = this, s = this.session;
    if (!this.footer) return;
    var open = s && (s.status === "queued" || s.status === "active");
    if (open && this.footer.getAttribute("data-mode") === "composer") return;   // keep what is being typed
    clear(this.footer);
    if (open) {
      this.footer.setAttribute("data-mode", "composer");
      var input = h("textarea", { class: "composer", testid: "composer", rows: "2",
                                  "aria-label": "Your message", placeholder: "Write a message\u2026" });
      var counter = this.counter(input);
      var form = h("form", { class: "compose" }, input,
        this.attachControls ? this.attachControls(input, [this.list]) : null,   // widget-attachments.js
        h("button", { type: "submit", class: "send", testid: "send", "aria-label": "Send" }, "Send"));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        if (input.value.length > MAX_MESSAGE) { counter.update(); input.focus(); return; }   // never cut: shorten first
        self.send(input.value); input.value = ""; counter.update(); input.focus();
      });
      input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
      });
      input.addEventListener("input", function () { self.typing(); });
      input.addEventListener("blur", function () { self.stopTyping(); });
      append(this.footer, [form, counter, this.endControls()]);
      return;
    }
    this.footer.setAttribute("data-mode", "closed");
    if (!s) return;
    if (s.status === "timed_out" || this.endReason === "queue_timeout") {
      this.timedOutReason = "Sorry, no one could answer in time. Leave us a message and we will reply by e-mail.";
      append(this.footer, [h("p", { class: "hint", testid: "timed-out", text: this.timedOutReason }),
        h("button", { type: "button", class: "primary", testid: "leave-message",
                      onclick: function () { self.viewChosen = true; self.show("offline"); } }, "Leave a message")]);
      return;
    }
    if (s.status === "ended" && s.agent_id) this.footer.appendChild(this.ratingForm(s));
    this.footer.appendChild(h("button", { type: "button", class: "link", testid: "new-chat",
      onclick: function () { self.forgetSession(); self.viewChosen = false; self.show(self.chatView()); } }, "Start a new chat"));
  };

  /** "End chat", which asks first: "End this chat?" with End chat / Keep chatting. */
  Widget.prototype.endControls = function () {
    var self = this;
    var ask = h("button", { type: "button", class: "link end", testid: "end-chat" }, "End chat");
    var confirm = h("div", { class: "end-confirm", testid: "end-confirm-bar", role: "group", "aria-label": "End this chat?", hidden: true },
      h("span", { text: "End this chat?" }),
      h("button", { type: "button", class: "danger", testid: "end-confirm", onclick: function () { self.endChat(); } }, "End chat"),
      h("button", { type: "button", class: "secondary", testid: "end-cancel",
                    onclick: function () { confirm.hidden = true; ask.hidden = false; ask.focus(); } }, "Keep chatting"));
    ask.addEventListener("click", function () {
      ask.hidden = true; confirm.hidden = false;
      confirm.querySelector("[data-testid=end-cancel]").focus();
    });
    return h("div", { class: "end-row" }, ask, confirm);
  };

  Widget.prototype.ratingForm = function (s) {
    var self = this;
    if (this.ratedSessions[s.id] || s.satisfaction_rating) {
      return h("p", { class: "thanks", testid: "rating-thanks", text: "Thank you for your feedback!" });
    }
    // 5..1 in the DOM and shown right to left, so CSS can light a star and every one before it
    var row = h("div", { class: "star-row" });
    [5, 4, 3, 2, 1].forEach(function (n) {
      var id = "sw-star-" + n;
      append(row, [h("input", { type: "radio", name: "rating", value: String(n), id: id, testid: "rating-" + n }),
                   h("label", { for: id, title: n + (n === 1 ? " star" : " stars"), "aria-label": n + " of 5" }, "\u2605")]);
    });
    var stars = h("fieldset", { class: "stars" }, h("legend", { text: "How did we do?" }), row);
    var comment = h("textarea", { id: "sw-comment", rows: "2", maxlength: "2000", testid: "rating-comment",
                                  placeholder: "Anything to add? (optional)", "aria-label": "Comment" });
    var error = h("p", { class: "error", role: "alert", hidden: true });
    var form = h("form", { class: "form rating", testid: "rating" }, stars, comment, error,
      h("button", { type: "submit", class: "primary", testid: "rating-submit" }, "Send rating"));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var chosen = form.querySelector("input[name=rating]:checked");
      if (!chosen) { self.showError(error, "Choose from 1 to 5 stars."); return; }
      var payload = { session_id: s.id, rating: Number(chosen.value) };
      if (comment.value.trim()) payload.comment = comment.value.trim();
      self.call("chat:rate", payload).then(function () {
        self.ratedSessions[s.id] = true;
        form.replaceWith(h("p", { class: "thanks", testid: "rating-thanks", text: "Thank you for your feedback!" }));
      }, function (err) { self.showError(error, err.message); });
    });
    return form;
  };

  /** Confirmed messages by seq, then the outbox in the order typed. The list is patched, not
   *  rebuilt: an item keeps its element (keyed by client_msg_id, else seq) from "Sending" to
   *  "Seen", so screen readers announce a message once and long chats stay cheap to update. */
  Widget.prototype.renderMessages = function () {
    if (this.view !== "chat" || !this.list) return;
    var self = this, wanted = [];
    var confirmed = this.delivery ? this.delivery.ordered() : [];
    var outbox = this.delivery ? this.delivery.outbox : [];
    var lastOwn = 0;
    confirmed.forEach(function (m) { if (m.sender_type === "customer") lastOwn = m.seq; });
    function notesAfter(seq) {
      (self.notes || []).forEach(function (n, i) {
        if (n.afterSeq === seq) wanted.push({ key: "n:" + i, sig: "", build: function () {
          return h("li", { class: "notice", testid: "system-note", text: n.text }); } });
      });
    }
    notesAfter(0);
    confirmed.forEach(function (m) {
      var seq = m.seq;
      var seen = m.sender_type === "customer" && seq === lastOwn && self.agentReadSeq >= seq;
      wanted.push({ key: m.client_msg_id && m.sender_type === "customer" ? "c:" + m.client_msg_id : "s:" + seq,
                    sig: "sent" + seen + seq, build: function () {
        return self.messageItem(m.sender_type, m.message, "sent", m.created_at,
                                { seq: seq, seen: seen, files: m.attachments, parts: m.parts }); } });
      notesAfter(seq);
    });
    outbox.forEach(function (p) {
      wanted.push({ key: "c:" + p.client_msg_id, sig: p.state + (p.error || ""), build: function () {
        return self.messageItem("customer", p.message, p.state, null,
                                { clientMsgId: p.client_msg_id, error: p.error, final: p.final,
                                  files: p.files, pending: p.state === "failed" ? "failed" : "sending" }); } });
    });
    var s = this.session;
    if (s && s.status !== "queued" && s.status !== "active") {   // the end of the conversation says so
      var ended = s.status === "timed_out" || this.endReason === "queue_timeout"
        ? "No one could answer in time." : "This chat has ended.";
      wanted.push({ key: "ended", sig: ended, build: function () {
        return h("li", { class: "notice", testid: "ended", text: ended }); } });
    }
    var grew = this.list.children.length !== wanted.length;
    this.patchList(wanted);
    if (this.list.scrollToEnd) this.list.scrollToEnd(grew && outbox.length > 0);
    else this.list.scrollTop = this.list.scrollHeight;
  };

  /** Make the list's children match ``wanted`` ([{key, sig, build}]) with the fewest changes:
   *  same key and sig → kept; same key, new sig → everything but the text is replaced. */
  Widget.prototype.patchList = function (wanted) {
    var list = this.list, existing = {}, keep = {};
    Array.prototype.forEach.call(list.children, function (el) { existing[el.getAttribute("data-key")] = el; });
    wanted.forEach(function (w) { keep[w.key] = true; });
    Object.keys(existing).forEach(function (key) { if (!keep[key]) existing[key].remove(); });
    var cursor = list.firstChild;
    wanted.forEach(function (w) {
      var el = existing[w.key];
      if (!el) {
        el = w.build();
        el.setAttribute("data-key", w.key);
        el.setAttribute("data-sig", w.sig);
      } else if (el.getAttribute("data-sig") !== w.sig) {
        var fresh = w.build();
        Array.prototype.forEach.call(fresh.attributes, function (a) { el.setAttribute(a.name, a.value); });
        if (!fresh.hasAttribute("data-seq")) el.removeAttribute("data-seq");
        while (el.childNodes.length > 1) el.removeChild(el.lastChild);            // keep the text
        while (fresh.childNodes.length > 1) el.appendChild(fresh.childNodes[1]);
        el.setAttribute("data-sig", w.sig);
      }
      if (el !== cursor) list.insertBefore(el, cursor);
      else cursor = cursor.nextSibling;
    });
  };

  Widget.prototype.messageItem = function (sender, text, state, at, extra) {
    var own = sender === "customer";
    var label = own ? "You" : sender === "agent" ? ((this.session && this.session.agent && this.session.agent.display_name) || "Agent")
      : sender === "bot" ? "Assistant" : sender === "system" ? "Automatic message" : "";
    var meta = h("span", { class: "meta" }, label ? label + " \u00b7 " : "", at ? timeOf(at) : "");
    if (state === "sending") append(meta, h("span", { class: "state", testid: "state", text: " \u00b7 Sending\u2026" }));
    if (state === "sent" && own) append(meta, h("span", { class: "state", testid: "state", text: " \u00b7 Sent" }));
    if (extra.seen) append(meta, h("span", { class: "seen", testid: "seen", text: " \u00b7 Seen" }));
    var item = h("li", { class: "msg " + (own ? "own" : sender), testid: "message", "data-sender": sender,
                         "data-state": state, "data-seq": extra.seq ? String(extra.seq) : null },
      extra.parts && extra.parts.length ? this.renderParts(extra.parts, text) : h("p", { class: "text" }, this.linkify(text)),
      extra.files && this.attachmentList ? this.attachmentList(extra.files, extra.pending) : null, meta);
    if (state === "failed") append(item, this.failedNote(extra.clientMsgId, extra.error, extra.final));
    return item;
  };

  /** "Not sent: <reason>" under an outbox entry, with "Retry" unless retrying cannot help. */
  Widget.prototype.failedNote = function (clientMsgId, error, final) {
    var self = this;
    return h("p", { class: "failed", role: "alert", testid: "failed" }, "Not sent" + (error ? ": " + error : "") + " ",
      final ? null : h("button", { type: "button", class: "link", testid: "retry",
                                   onclick: function () { self.retry(clientMsgId); } }, "Retry"));
  };

  /** A message's structured parts (PROTOCOL addition): text, times in the reader's locale and
   *  time zone, article cards. Unknown part types fall back to the plain text of the message. */
  Widget.prototype.renderParts = function (parts, fallback) {
    var self = this, box = h("div", { class: "text parts", testid: "message-parts" }), known = true;
    parts.forEach(function (part) {
      if (part.type === "text") append(box, self.linkify(String(part.text || "")));
      else if (part.type === "time") {
        box.appendChild(h("time", { datetime: part.value, testid: "part-time", text: dateTimeOf(part.value) }));
      } else if (part.type === "articles") {
        box.appendChild(h("ul", { class: "cards", "aria-label": "Articles" }, (part.items || []).map(function (a) {
          return h("li", {}, h("a", { class: "card", testid: "article-card", target: "_blank", rel: "noopener noreferrer",
                                      href: /^\/[^/]/.test(a.url) ? self.base + a.url : /^https?:\/\//.test(a.url) ? a.url : null },
            h("span", { class: "card-kicker", text: "Help article" }), h("span", { class: "card-title", text: a.title })));
        })));
      } else known = false;
    });
    return known ? box : h("p", { class: "text" }, this.linkify(fallback));
  };

  /** Text nodes, with web addresses and help-article paths (auto-replies use those) as links. */
  Widget.prototype.linkify = function (text) {
    var parts = [], last = 0, match, base = this.base;
    LINK.lastIndex = 0;
    while ((match = LINK.exec(text))) {
      var raw = match[0].replace(/[).,;:!?]+$/, "");             // trailing punctuation is not the link's
      if (match.index > last) parts.push(text.slice(last, match.index));
      parts.push(h("a", { href: raw.charAt(0) === "/" ? base + raw : raw, target: "_blank",
                          rel: "noopener noreferrer", text: raw }));
      last = match.index + raw.length;
      LINK.lastIndex = last;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  };

  Widget.prototype.systemNote = function (text) {
    this.notes = (this.notes || []).concat([{ afterSeq: this.lastSeq(), text: text }]);
    if (this.view === "chat") this.renderMessages();
  };

  Widget.prototype.setAgentTyping = function (on) {
    var self = this;
    clearTimeout(this.agentTypingTimer);
    if (on) this.agentTypingTimer = setTimeout(function () { self.setAgentTyping(false); }, AGENT_TYPING_SHOWN_MS);
    if (!this.typingLine) return;
    var name = (this.session && this.session.agent && this.session.agent.display_name) || "The agent";
    this.typingLine.hidden = !on;
    this.typingLine.textContent = on ? name + " is typing\u2026" : "";
  };

  Widget.prototype.typing = function () {
    var self = this;
    if (!this.session || this.session.status !== "active" || !this.connected) return;
    if (!this.typingSent) {
      this.typingSent = true;
      this.call("chat:typing", { session_id: this.session.id, typing: true }).catch(function () {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(function () { self.stopTyping(); }, TYPING_IDLE_MS);
  };

  Widget.prototype.stopTyping = function () {
    clearTimeout(this.typingTimer);
    if (!this.typingSent || !this.session) return;
    this.typingSent = false;
    this.call("chat:typing", { session_id: this.session.id, typing: false }).catch(function () {});
  };

  // ---------------------------------------------------------------- views: offline message

  /** The department's own offline text and hours (or the queue timeout's), then the form. */
  Widget.prototype.renderOffline = function () {
    var self = this;
    var d = this.departmentRow(this.department);
    var timedOut = this.session && (this.session.status === "timed_out" || this.endReason === "queue_timeout");
    var reason = timedOut && this.timedOutReason ? this.timedOutReason
      : (d && d.offline_message) || (d && !d.available ? "No one is available to chat right now. Leave us a message and we will get back to you."
        : "Leave us a message and we will get back to you.");
    var subject = h("input", { id: "sw-off-subject", required: true, maxlength: "255", testid: "offline-subject",
                               value: this.draft.subject });
    var message = h("textarea", { id: "sw-off-message", required: true, rows: "5", testid: "offline-message" });
    message.value = this.draft.message;
    var counter = this.counter(message);
    var email = h("input", { id: "sw-off-email", type: "email", maxlength: "255", testid: "offline-email", autocomplete: "email" });
    var error = h("p", { class: "error", role: "alert", hidden: true });
    var hours = d && d.business_hours ? hoursText(d.business_hours, d.time_zone) : null;
    var form = h("form", { class: "form", testid: "offline-form", novalidate: true },
      this.topicLine(),
      h("p", { class: "hint", testid: "offline-reason", text: reason }),
      hours ? h("p", { class: "hours", testid: "offline-hours" }, h("strong", { text: "Opening hours: " }), hours) : null,
      h("div", { class: "field" }, h("label", { for: "sw-off-subject", text: "Subject" }), subject),
      h("div", { class: "field" }, h("label", { for: "sw-off-message", text: "Message" }), message, counter),
      h("div", { class: "field" }, h("label", { for: "sw-off-email", text: "E-mail for our reply (optional)" }), email),
      error, h("button", { type: "submit", class: "primary", testid: "offline-submit" }, "Send message"),
      d && d.available && !timedOut ? h("button", { type: "button", class: "link", testid: "chat-instead",
        onclick: function () { self.viewChosen = false; self.show("prechat"); } }, "Chat with us instead") : null);
    subject.addEventListener("input", function () { self.draft.subject = subject.value; });
    message.addEventListener("input", function () { self.draft.message = message.value; });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!subject.value.trim() || !message.value.trim()) { self.showError(error, "Please fill in the subject and the message."); return; }
      if (message.value.length > MAX_MESSAGE) { self.showError(error, "Your message is too long."); message.focus(); return; }
      var payload = { subject: subject.value.trim(), message: message.value.trim() };
      if (email.value.trim()) payload.email = email.value.trim();
      if (self.session) payload.session_id = self.session.id;
      else if (self.department) payload.department = self.department;
      self.call("chat:leave_message", payload).then(function (data) {
        self.draft = { subject: "", message: "" };
        self.onTicket(data.ticket);
        form.replaceWith(h("div", { class: "done", testid: "offline-done" },
          h("p", { text: "Thanks! Your message is ticket " + data.ticket.ticket_number + ". We will reply soon." }),
          h("button", { type: "button", class: "link", onclick: function () { self.show("tickets"); } }, "See my tickets")));
      }, function (err) { self.showError(error, self.errorText(err)); });
    });
    this.body.appendChild(form);
  };

  // ---------------------------------------------------------------- views: tickets

  Widget.prototype.renderTickets = function () {
    this.ticketList = h("ul", { class: "tickets", testid: "tickets", "aria-label": "My tickets" });
    append(this.body, this.ticketList);
    this.renderTicketList();
    this.loadTickets();
  };

  Widget.prototype.loadTickets = function () {
    var self = this;
    this.rest("GET", "/api/v1/tickets?sort=-updated_at&limit=20").then(function (page) {
      (page.items || []).forEach(function (t) { self.tickets[t.id] = t; });
      self.ticketsLoaded = true;
      self.checkReplies(page.items || []);
      if (self.view === "tickets") self.renderTicketList();
    }, function (err) { self.flash(err.message); });
  };

  Widget.prototype.renderTicketList = function () {
    var self = this, list = this.ticketList;
    if (!list) return;
    clear(list);
    var all = Object.keys(this.tickets).map(function (k) { return self.tickets[k]; })
      .sort(function (a, b) { return (b.updated_at || "").localeCompare(a.updated_at || ""); });
    if (!all.length) {
      list.appendChild(h("li", { class: "empty", text: this.ticketsLoaded ? "You have no tickets." : "Loading\u2026" }));
      return;
    }
    all.forEach(function (t) {
      var unread = self.isUnread(t.id);
      list.appendChild(h("li", { class: "ticket-row" }, h("button", {
        type: "button", class: "ticket" + (unread ? " unread" : ""), testid: "ticket-item", "data-id": t.id,
        "data-status": t.status, "data-unread": unread ? "true" : "false",
        "aria-label": t.ticket_number + ": " + t.subject + (unread ? " (new reply)" : ""),
        onclick: function () { self.openTicket(t.id); },
      }, h("span", { class: "number", text: t.ticket_number }),
         h("span", { class: "subject", text: t.subject }),
         unread ? h("span", { class: "dot", testid: "ticket-unread", title: "New reply" }) : null,
         h("span", { class: "status status-" + t.status, testid: "ticket-status", text: t.status.replace("_", " ") }))));
    });
  };

  // ---------------------------------------------------------------- views: one ticket

  /** When the customer last looked at each ticket (localStorage, per customer and ticket), and
   *  the newest agent reply seen live or loaded: "unread" when a reply is newer than the look. */
  Widget.prototype.ticketSeen = function (id, at) {
    var key = this.storeKey + ":ticket-seen:" + id;
    try {
      if (at) localStorage.setItem(key, at);
      return localStorage.getItem(key);
    } catch (e) { return at || null; }
  };

  Widget.prototype.isUnread = function (id) {
    var reply = this.lastReply && this.lastReply[id];
    var seen = this.ticketSeen(id);
    return !!reply && (!seen || reply > seen) && !(this.view === "ticket" && this.ticketId === id);
  };

  Widget.prototype.noteReply = function (ticketId, message) {
    if (!message || message.is_internal || message.sender_type === "customer") return;
    this.lastReply = this.lastReply || {};
    if (!this.lastReply[ticketId] || message.created_at > this.lastReply[ticketId]) this.lastReply[ticketId] = message.created_at;
  };

  /** Replies newer than the last look, for the tickets changed since (a bounded check: the
   *  tickets shown, and only those updated after the customer last opened them). */
  Widget.prototype.checkReplies = function (tickets) {
    var self = this;
    tickets.forEach(function (t) {
      var seen = self.ticketSeen(t.id);
      if (seen && (t.updated_at || "") <= seen) return;
      self.rest("GET", "/api/v1/tickets/" + encodeURIComponent(t.id) + "/messages?limit=100").then(function (page) {
        (page.items || []).forEach(function (m) { self.noteReply(t.id, m); });
        if (self.view === "tickets") self.renderTicketList();
      }, function () { /* the mark waits for the next look */ });
    });
  };

  Widget.prototype.openTicket = function (id) {
    this.ticketId = id;
    this.ticketMessages = [];
    this.ticketLoaded = false;
    this.show("ticket");
  };

  Widget.prototype.renderTicket = function () {
    var self = this, t = this.tickets[this.ticketId] || { id: this.ticketId, subject: "", status: "open", ticket_number: "" };
    var list = h("ol", { class: "messages", testid: "ticket-messages", "aria-live": "polite", "aria-label": "Ticket messages" });
    var input = h("textarea", { class: "composer", testid: "ticket-reply", rows: "2", "aria-label": "Your reply",
                                placeholder: t.status === "closed" ? "This ticket is closed" : "Write a reply\u2026" });
    var counter = this.counter(input);
    var send = h("button", { type: "submit", class: "send", testid: "ticket-send" }, "Send");
    var reopen = t.status === "resolved" ? h("p", { class: "hint small", testid: "ticket-reopen-hint",
      text: "This ticket is resolved. Replying reopens it." }) : null;
    if (t.status === "closed") { input.disabled = true; send.disabled = true; }
    var form = h("form", { class: "compose" }, input,
      this.attachControls ? this.attachControls(input, [list], t.id) : null,   // widget-attachments.js
      send);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (input.value.length > MAX_MESSAGE) { counter.update(); input.focus(); return; }   // never cut: shorten first
      self.sendTicketReply(t.id, input.value);
      input.value = ""; counter.update(); input.focus();
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    this.ticketView = h("section", { class: "ticket-view", testid: "ticket-view", "data-id": t.id },
      h("div", { class: "ticket-head" },
        h("button", { type: "button", class: "link back", testid: "ticket-back",
                      onclick: function () { self.show("tickets"); } }, "\u2039 My tickets"),
        h("h3", { class: "ticket-title" }, h("span", { class: "number", text: t.ticket_number + " " }), t.subject),
        h("span", { class: "status status-" + t.status, testid: "ticket-view-status", text: t.status.replace("_", " ") })),
      list, h("div", { class: "footer" }, reopen, form, counter));
    this.ticketList = null;
    this.ticketListEl = list;
    append(this.body, this.ticketView);
    this.followEnd(list);
    this.renderTicketMessages();
    if (!this.ticketLoaded) this.loadTicket();
  };

  Widget.prototype.loadTicket = function () {
    var self = this, id = this.ticketId;
    if (!id) return;
    var path = "/api/v1/tickets/" + encodeURIComponent(id);
    Promise.all([this.rest("GET", path), this.rest("GET", path + "/messages?limit=100")]).then(function (r) {
      if (self.ticketId !== id) return;
      self.tickets[id] = r[0];
      self.ticketLoaded = true;
      self.ticketMessages = [];
      self.addTicketMessages(r[1].items || [], true);
      if (self.view === "ticket") self.show("ticket");
    }, function (err) { self.flash(err.message); });
  };

  /** Messages of the open ticket, by id (a push and a load never show one twice), oldest first. */
  Widget.prototype.addTicketMessages = function (list, quiet) {
    var self = this, known = {};
    this.ticketMessages.forEach(function (m) { known[m.id] = true; });
    list.forEach(function (m) {
      if (!m.is_internal && !known[m.id]) { self.ticketMessages.push(m); known[m.id] = true; }
      if (m.sender_type === "customer") self.settleTicketReply(m.client_msg_id);   // a push may beat the answer
      self.noteReply(self.ticketId, m);
    });
    this.ticketMessages.sort(function (a, b) { return (a.created_at || "").localeCompare(b.created_at || ""); });
    this.markTicketSeen();
    if (!quiet) this.renderTicketMessages();
  };

  Widget.prototype.markTicketSeen = function () {
    if (this.view !== "ticket" || !this.ticketId || !this.isOpen) return;
    var newest = this.lastReply && this.lastReply[this.ticketId];
    var seen = this.ticketSeen(this.ticketId);
    if (newest && (!seen || newest > seen)) this.ticketSeen(this.ticketId, newest);
    else if (!seen) this.ticketSeen(this.ticketId, new Date().toISOString());
  };

  Widget.prototype.renderTicketMessages = function () {
    var self = this, list = this.ticketListEl;
    if (this.view !== "ticket" || !list) return;
    clear(list);
    var t = this.tickets[this.ticketId];
    if (t && t.description) {               // what the customer wrote when the ticket was opened
      list.appendChild(h("li", { class: "msg own", testid: "ticket-description", "data-sender": "customer" },
        h("p", { class: "text" }, this.linkify(t.description)),
        h("span", { class: "meta" }, "You \u00b7 ", h("time", { datetime: t.created_at, text: dateTimeOf(t.created_at) }))));
    }
    if (!this.ticketMessages.length && !(t && t.description)) {
      list.appendChild(h("li", { class: "notice", text: this.ticketLoaded ? "No messages yet." : "Loading\u2026" }));
    }
    this.ticketMessages.forEach(function (m) {
      var own = m.sender_type === "customer";
      var label = own ? "You" : m.sender_type === "agent" ? "Support" : m.sender_type === "system" ? "Automatic message" : "Assistant";
      list.appendChild(h("li", { class: "msg " + (own ? "own" : m.sender_type), testid: "ticket-message",
                                 "data-sender": m.sender_type, "data-state": own ? "sent" : null },
        m.parts && m.parts.length ? self.renderParts(m.parts, m.message)
          : m.message || !m.attachments || !m.attachments.length ? h("p", { class: "text" }, self.linkify(m.message)) : null,
        m.attachments && self.attachmentList ? self.attachmentList(m.attachments) : null,
        h("span", { class: "meta" }, label + " \u00b7 ", h("time", { datetime: m.created_at, text: dateTimeOf(m.created_at) }))));
    });
    this.ticketOutbox.forEach(function (p) {
      if (p.ticket_id === self.ticketId) list.appendChild(self.pendingReplyItem(p));
    });
    if (list.scrollToEnd) list.scrollToEnd(true);
  };

  /** A reply still in the outbox: "Sending…" with its files' upload progress, or "Not sent". */
  Widget.prototype.pendingReplyItem = function (p) {
    var failed = p.state === "failed";
    return h("li", { class: "msg own", testid: "ticket-message", "data-sender": "customer", "data-state": failed ? "failed" : "sending" },
      p.message ? h("p", { class: "text" }, this.linkify(p.message)) : null,
      p.files && this.attachmentList ? this.attachmentList(p.files, failed ? "failed" : "sending") : null,
      h("span", { class: "meta" }, "You", failed ? null : h("span", { class: "state", testid: "state", text: " \u00b7 Sending\u2026" })),
      failed ? this.failedNote(p.client_msg_id, p.error, p.final) : null);
  };

  // ---------------------------------------------------------------- ticket replies: the outbox

  Widget.prototype.canReply = function (ticketId) {
    var t = this.tickets[ticketId];
    return !t || t.status !== "closed";
  };

  /** Queue a reply: shown at once as "Sending…", delivered in order (flushTickets). */
  Widget.prototype.sendTicketReply = function (ticketId, text) {
    text = text.trim();
    if (!text || !this.canReply(ticketId)) return;
    this.ticketOutbox.push({ client_msg_id: uuid(), message: text, state: "sending", ticket_id: ticketId });
    this.saveOutbox();
    this.renderTicketMessages();
    this.flushTickets();
  };

  /** Send the ticket replies one at a time (files uploaded first), as flush does for the chat.
   *  A lost answer, an outage or a reload is retried with the same client_msg_id: the server
   *  answers a resend with the reply it stored, so a reply is never stored twice. */
  Widget.prototype.flushTickets = function () {
    var self = this;
    if (this.ticketSending) return;
    var next = this.ticketOutbox.filter(function (p) { return p.state !== "failed"; })[0];
    if (!next) return;
    var attempt = this.ticketSending = {};
    next.state = "sending";
    var uploaded = next.files && this.uploadFiles ? this.uploadFiles(next) : Promise.resolve();
    uploaded.then(function () {
      var body = { message: next.message, client_msg_id: next.client_msg_id };
      if (next.files) body.attachments = next.files.map(function (f) { return f.id; });
      var sent = self.rest("POST", "/api/v1/tickets/" + encodeURIComponent(next.ticket_id) + "/messages", body);
      return Promise.race([sent, new Promise(function (resolve, reject) {   // a hung request is resent
        setTimeout(function () { reject({ code: "timeout", message: "No answer from the server" }); }, REPLY_TIMEOUT_MS);
      })]);
    }).then(function (m) {
      if (self.ticketSending !== attempt) return;
      self.ticketSending = false;
      self.settleTicketReply(next.client_msg_id, m);
      self.flushTickets();
    }, function (error) {
      if (self.ticketSending !== attempt) return;
      self.ticketSending = false;
      var wait = self.retryDelay(error);
      if (wait !== null) { setTimeout(function () { self.flushTickets(); }, wait); return; }   // still queued
      self.failEntry(next, error.message || "Could not send the reply",
                     !!error.final || (error.status >= 400 && error.status < 500));
      self.renderTicketMessages();
      self.flushTickets();
    });
  };

  /** A reply not sent: with a Retry button, or for good (``final``: kept as "not sent" across a
   *  reload, never resent, its files' bytes deleted). */
  Widget.prototype.failEntry = function (item, error, final) {
    item.state = "failed";
    item.error = error;
    item.final = final;
    if (final) this.saveOutbox();
  };

  /** How long to wait before sending again after a REST failure that may pass (no network, the
   *  service unavailable, rate limited), or null when it will not pass by waiting. */
  Widget.prototype.retryDelay = function (error) {
    if (error instanceof TypeError) return this.connected ? 2000 : 5000;   // fetch could not reach the server
    if (error.code === "timeout") return 1000;
    if (error.status === 429 || error.status === 503) return (error.retryAfter || 1) * 1000;
    if (error.status >= 500) return 2000;
    return null;
  };

  /** The server has the reply (its answer, or a push or load naming its client_msg_id). */
  Widget.prototype.settleTicketReply = function (clientMsgId, message) {
    var before = this.ticketOutbox.length, ticketId = null;
    if (!clientMsgId) return;
    this.ticketOutbox = this.ticketOutbox.filter(function (p) {
      if (p.client_msg_id !== clientMsgId) return true;
      ticketId = p.ticket_id;
      return false;
    });
    if (this.ticketOutbox.length !== before) this.saveOutbox();
    if (message && this.view === "ticket" && this.ticketId === ticketId) this.addTicketMessages([message]);
    else if (this.ticketOutbox.length !== before) this.renderTicketMessages();
  };

  /** ticket:message {ticket, message}: the open conversation grows, the list gets its mark. */
  Widget.prototype.onTicketMessage = function (p) {
    if (!p || !p.ticket) return;
    this.onTicket(p.ticket);
    if (p.message && this.view === "ticket" && this.ticketId === p.ticket.id) this.addTicketMessages([p.message]);
    else if (p.message) {
      this.noteReply(p.ticket.id, p.message);
      if (this.view === "tickets") this.renderTicketList();
    }
  };

  // ---------------------------------------------------------------- little things

  Widget.prototype.renderBadge = function () {
    this.badge.hidden = !this.unread;
    this.badge.textContent = this.unread ? String(this.unread) : "";
  };

  Widget.prototype.showError = function (el, text) { el.hidden = false; el.textContent = text; };

  Widget.prototype.errorText = function (err) {
    if (err && err.details && err.code === "validation_failed") {
      return Object.keys(err.details).map(function (k) { return k + ": " + [].concat(err.details[k]).join(" "); }).join("; ");
    }
    return (err && err.message) || "Something went wrong";
  };

  Widget.prototype.flash = function (text) { this.setStatus(text); };

  Widget.prototype.debounce = function (fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  };

  Widget.prototype.destroy = function () {
    if (this.socket) this.socket.disconnect();
    this.host.remove();
  };

  /** "Mon–Fri 09:00–17:00 (Europe/Berlin)": business hours as configured, days with the same
   *  ranges grouped. Shown as the department keeps them (its own zone), named. */
  function hoursText(hours, zone) {
    var days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    var names = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };
    var groups = [];
    days.forEach(function (day) {
      var ranges = (hours[day] || []).map(function (r) { return r[0] + "\u2013" + r[1]; }).join(", ");
      if (!ranges) return;
      var last = groups[groups.length - 1];
      if (last && last.ranges === ranges && days.indexOf(last.to) === days.indexOf(day) - 1) last.to = day;
      else groups.push({ from: day, to: day, ranges: ranges });
    });
    if (!groups.length) return "closed";
    return groups.map(function (g) {
      return names[g.from] + (g.to !== g.from ? "\u2013" + names[g.to] : "") + " " + g.ranges;
    }).join("; ") + " (" + (zone || "UTC") + ")";
  }

  /** Plain text of sanitised article HTML, parsed inertly (no scripts run, no images load). */
  function htmlToText(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    return doc.body.textContent || "";
  }

  // ------------------------------------------------------------------ public API

  var instance = null;

  function init(options) {
    var merged = {}, key;
    for (key in OPTIONS) merged[key] = OPTIONS[key];
    for (key in options || {}) merged[key] = options[key];
    if (!merged.token) throw new Error("SupportWidget.init: a customer token is required");
    if (instance) instance.destroy();
    var create = function () { instance = new Widget(merged); instance.start(); };
    if (document.body) create(); else document.addEventListener("DOMContentLoaded", create);
    return window.SupportWidget;
  }

  window.SupportWidget = {
    version: "1",
    init: init,
    open: function () { if (instance) instance.open(); },
    close: function () { if (instance) instance.close(); },
    destroy: function () { if (instance) { instance.destroy(); instance = null; } },
  };

  if (SCRIPT && SCRIPT.getAttribute("data-token")) {
    init({
      token: SCRIPT.getAttribute("data-token"),
      department: SCRIPT.getAttribute("data-department"),
      title: SCRIPT.getAttribute("data-title") || OPTIONS.title,
      position: SCRIPT.getAttribute("data-position") || OPTIONS.position,
      open: SCRIPT.hasAttribute("data-open"),
    });
  }
})();
