/*!
 * Support Service chat widget: files (attach button, paste and drag-and-drop of images, upload
 * progress, thumbnails and download links). Loaded by widget.js from the same server; it adds
 * methods to the widget and needs nothing else.
 *
 * An attached file becomes a message in one of the widget's outboxes like any typed one (the
 * chat's, or the ticket replies'): it is uploaded (POST /api/v1/attachments, with progress) when
 * its turn comes, then sent as chat:message (or POST /tickets/{id}/messages) with
 * `attachments: [id]` and the entry's client_msg_id, so order is kept and a failed upload is
 * retried from the same "Retry" button. A file the server refuses (too large, not an allowed
 * type) is shown as not sent with the server's reason, and is not retried.
 *
 * A reload loses nothing: the outbox (sessionStorage) keeps each entry's client_msg_id and the
 * ids of files already uploaded; the bytes of a file not uploaded yet wait in IndexedDB under
 * the entry's client_msg_id, written before the upload starts. After the reload the upload (or
 * only the send) resumes with the same client_msg_id, so the server stores the message once.
 * The bytes are deleted when the entry leaves the outbox (acknowledged) or is refused for good
 * (widget.js's saveOutbox says which entries are still to be sent); a tab closed for a day
 * leaves nothing behind either (older records are swept).
 */
(function () {
  "use strict";

  if (window.SupportWidgetAttachments) return;

  var ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.png,.jpg,.jpeg,.gif,.webp,.pdf,.txt";
  var REFUSED = { 413: true, 415: true, 422: true };   // retrying cannot help: the file itself is refused

  // ---------------------------------------------------------------- files waiting in IndexedDB

  var DB_NAME = "support-widget-files", STORE = "files", KEEP_MS = 24 * 3600 * 1000;
  var dbPromise = null;

  /** The database, or null where IndexedDB is missing or blocked (files then live in memory only). */
  function openDb() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve) {
        var request;
        try { request = indexedDB.open(DB_NAME, 1); } catch (e) { resolve(null); return; }
        request.onupgradeneeded = function () { request.result.createObjectStore(STORE, { keyPath: "key" }); };
        request.onsuccess = function () { resolve(request.result); };
        request.onerror = request.onblocked = function () { resolve(null); };
      }).then(function (db) { if (db) sweep(db); return db; });
    }
    return dbPromise;
  }

  /** One transaction: ``work(store)`` queues requests; resolves when it has committed (the
   *  result of the request work returned), or null when it could not run. */
  function transact(mode, work) {
    return openDb().then(function (db) {
      if (!db) return null;
      return new Promise(function (resolve) {
        var tx = db.transaction(STORE, mode), result = null;
        var request = work(tx.objectStore(STORE));
        if (request) request.onsuccess = function () { result = request.result; };
        tx.oncomplete = function () { resolve(result); };
        tx.onerror = tx.onabort = function () { resolve(null); };
      });
    }).catch(function () { return null; });
  }

  /** Records of tabs closed long ago (their outbox went with the tab). */
  function sweep(db) {
    try {
      var cursor = db.transaction(STORE, "readwrite").objectStore(STORE).openCursor();
      cursor.onsuccess = function () {
        var c = cursor.result;
        if (!c) return;
        if (!(c.value.at > Date.now() - KEEP_MS)) c.delete();
        c.continue();
      };
    } catch (e) { /* nothing to sweep */ }
  }

  function blobKey(item, index) { return item.client_msg_id + "#" + index; }

  /** This tab's id (kept in sessionStorage, as the outbox is): IndexedDB is shared by the
   *  origin's tabs, and a tab releases only the records it wrote. */
  var tabId = null;
  function thisTab(uuid) {
    if (tabId) return tabId;
    try {
      tabId = sessionStorage.getItem("support-widget:tab");
      if (!tabId) { tabId = uuid(); sessionStorage.setItem("support-widget:tab", tabId); }
    } catch (e) { tabId = tabId || uuid(); }
    return tabId;
  }

  var blobs = {
    put: function (key, file, tab) {
      return transact("readwrite", function (s) { return s.put({ key: key, tab: tab, at: Date.now(), file: file }); });
    },
    get: function (key) { return transact("readonly", function (s) { return s.get(key); }).then(function (r) { return r ? r.file : null; }); },
    /** Delete this tab's records whose outbox entry is not in ``live`` (client_msg_id -> true). */
    release: function (tab, live) {
      return transact("readwrite", function (s) {
        var cursor = s.openCursor();
        cursor.onsuccess = function () {
          var c = cursor.result;
          if (!c) return;
          if (c.value.tab === tab && !live[c.value.key.split("#")[0]]) c.delete();
          c.continue();
        };
      });
    },
  };

  function sizeText(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " B";
  }

  function filesOf(transfer) {
    var out = [];
    if (!transfer) return out;
    Array.prototype.forEach.call(transfer.files || [], function (f) { out.push(f); });
    return out;
  }

  /** A paperclip icon drawn in SVG (an emoji may have no font on the customer's machine). */
  function paperclip() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.8");
    path.setAttribute("stroke-linecap", "round");
    svg.appendChild(path);
    return svg;
  }

  function install(proto, lib) {
    var h = lib.h, uuid = lib.uuid;

    /** The attach button and its file picker; paste and drop on ``zones`` attach files too. With
     *  ``ticketId`` the files become replies to that ticket, else chat messages. */
    proto.attachControls = function (input, zones, ticketId) {
      var self = this;
      var picker = h("input", { type: "file", class: "file-input", testid: "attach-input", multiple: true,
                                accept: ACCEPT, tabindex: "-1", "aria-hidden": "true" });
      picker.addEventListener("change", function () { self.attachFiles(picker.files, ticketId); picker.value = ""; });
      var button = h("button", { type: "button", class: "attach", testid: "attach", "aria-label": "Attach a file",
                                 title: "Attach a file (image, PDF or text)", onclick: function () { picker.click(); } },
        paperclip());
      input.addEventListener("paste", function (e) {
        var files = filesOf(e.clipboardData);
        if (files.length) { e.preventDefault(); self.attachFiles(files, ticketId); }
      });
      zones.forEach(function (zone) {
        if (!zone) return;
        zone.addEventListener("dragover", function (e) {
          if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") >= 0) {
            e.preventDefault();
            zone.classList.add("dropping");
          }
        });
        zone.addEventListener("dragleave", function () { zone.classList.remove("dropping"); });
        zone.addEventListener("drop", function (e) {
          zone.classList.remove("dropping");
          var files = filesOf(e.dataTransfer);
          if (files.length) { e.preventDefault(); self.attachFiles(files, ticketId); }
        });
      });
      if (input.disabled) button.disabled = picker.disabled = true;   // e.g. a closed ticket
      return [picker, button];
    };

    /** Each file becomes its own message in the outbox (the ticket's replies with ``ticketId``),
     *  sent in turn. */
    proto.attachFiles = function (list, ticketId) {
      var self = this;
      if (ticketId && !this.canReply(ticketId)) return;
      Array.prototype.forEach.call(list || [], function (file) {
        var files = [{ file: file, name: file.name || "pasted-image.png", size: file.size, type: file.type, id: null, progress: 0 }];
        if (!ticketId) { self.queue({ message: "", files: files }); return; }
        self.ticketOutbox.push({ client_msg_id: uuid(), message: "", state: "sending", ticket_id: ticketId, files: files });
      });
      if (!ticketId) return;
      this.saveOutbox();
      this.renderTicketMessages();
      this.flushTickets();
    };

    /** Upload the item's files that have no id yet, one after the other. A file's bytes go into
     *  IndexedDB first (so a reload cannot lose it); one the page no longer holds (a reload) is
     *  read back from there. */
    proto.uploadFiles = function (item) {
      var self = this, tab = thisTab(uuid);
      return (item.files || []).reduce(function (done, f, i) {
        return done.then(function () {
          if (f.id) return null;
          var ready = f.file ? blobs.put(blobKey(item, i), f.file, tab).then(function () { return f.file; })
            : blobs.get(blobKey(item, i));
          return ready.then(function (file) { f.file = file || null; return self.uploadOne(item, f, false); });
        });
      }, Promise.resolve());
    };

    /** Called with the outbox entries still to be sent (client_msg_id -> true): the bytes kept
     *  for any other entry of this tab are deleted. */
    proto.releaseFiles = function (live) {
      blobs.release(thisTab(uuid), live);
    };

    proto.uploadOne = function (item, f, retried) {
      var self = this;
      return new Promise(function (resolve, reject) {
        if (!f.file) {
          reject({ code: "upload_failed", final: true, message: f.name + ": the file is gone after a reload; attach it again" });
          return;
        }
        var xhr = new XMLHttpRequest();
        xhr.open("POST", self.base + "/api/v1/attachments");
        xhr.setRequestHeader("Authorization", "Bearer " + self.token);
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) self.showProgress(f, e.loaded / e.total);
        });
        xhr.addEventListener("load", function () {
          var body = {};
          try { body = JSON.parse(xhr.responseText || "{}"); } catch (e) { /* not JSON */ }
          if (xhr.status === 201) { f.id = body.id; self.showProgress(f, 1); self.saveOutbox(); resolve(); return; }
          if (xhr.status === 401 && !retried && self.o.getToken) {
            self.refreshToken().then(function () { return self.uploadOne(item, f, true); }).then(resolve, reject);
            return;
          }
          reject({ code: "upload_failed", final: !!REFUSED[xhr.status],
                   message: f.name + ": " + (body.detail || "the upload failed (" + xhr.status + ")") });
        });
        xhr.addEventListener("error", function () {
          reject({ code: "upload_failed", message: f.name + ": the upload failed; check your connection" });
        });
        var form = new FormData();
        form.append("file", f.file, f.name);
        self.showProgress(f, 0);
        xhr.send(form);
      });
    };

    proto.showProgress = function (f, value) {
      f.progress = value;
      if (f.bar) { f.bar.value = value; f.bar.textContent = Math.round(value * 100) + "%"; }
    };

    /** A message's files: images as thumbnails that open the full image, others as links. Outbox
     *  files (not sent yet, ``pending`` is the outbox state) show their name and the upload's progress. */
    proto.attachmentList = function (files, pending) {
      var self = this;
      if (!files || !files.length) return null;
      return h("ul", { class: "files", testid: "attachments" }, files.map(function (f) {
        if (pending) {   // "sending" shows the upload's progress; "failed" only the name
          f.bar = pending === "failed" ? null : h("progress", { max: "1", value: String(f.progress || 0),
                                                               testid: "upload-progress", "aria-label": "Uploading " + f.name });
          return h("li", { class: "file pending" }, h("span", { class: "file-name", text: f.name }), f.bar);
        }
        var href = f.url ? self.base + f.url : null;
        if (f.thumbnail_url) {
          return h("li", { class: "file image" },
            h("a", { href: href, target: "_blank", rel: "noopener noreferrer", testid: "attachment-image",
                     title: "Open " + f.name },
              h("img", { src: self.base + f.thumbnail_url, alt: f.name, loading: "lazy" })));
        }
        return h("li", { class: "file" },
          h("a", { href: href, target: "_blank", rel: "noopener noreferrer", testid: "attachment-link",
                   text: f.name + " (" + sizeText(f.size || 0) + ")" }));
      }));
    };
  }

  window.SupportWidgetAttachments = { install: install };
})();
