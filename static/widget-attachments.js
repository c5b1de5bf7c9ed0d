/*!
 * Support Service chat widget: files (attach button, paste and drag-and-drop of images, upload
 * progress, thumbnails and download links). Loaded by widget.js from the same server; it adds
 * methods to the widget and needs nothing else.
 *
 * An attached file becomes a message in the widget's outbox like any typed one: it is uploaded
 * (POST /api/v1/attachments, with progress) when its turn comes, then sent as chat:message with
 * `attachments: [id]`, so order is kept and a failed upload is retried from the same "Retry"
 * button. A file the server refuses (too large, not an allowed type) is shown as not sent with
 * the server's reason, and is not retried.
 */
(function () {
  "use strict";

  if (window.SupportWidgetAttachments) return;

  var ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.png,.jpg,.jpeg,.gif,.webp,.pdf,.txt";
  var REFUSED = { 413: true, 415: true, 422: true };   // retrying cannot help: the file itself is refused

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
    var h = lib.h;

    /** The attach button and its file picker; paste and drop on ``zones`` attach files too. */
    proto.attachControls = function (input, zones) {
      var self = this;
      var picker = h("input", { type: "file", class: "file-input", testid: "attach-input", multiple: true,
                                accept: ACCEPT, tabindex: "-1", "aria-hidden": "true" });
      picker.addEventListener("change", function () { self.attachFiles(picker.files); picker.value = ""; });
      var button = h("button", { type: "button", class: "attach", testid: "attach", "aria-label": "Attach a file",
                                 title: "Attach a file (image, PDF or text)", onclick: function () { picker.click(); } },
        paperclip());
      input.addEventListener("paste", function (e) {
        var files = filesOf(e.clipboardData);
        if (files.length) { e.preventDefault(); self.attachFiles(files); }
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
          if (files.length) { e.preventDefault(); self.attachFiles(files); }
        });
      });
      return [picker, button];
    };

    /** Each file becomes its own message in the outbox, sent in turn. */
    proto.attachFiles = function (list) {
      var self = this;
      Array.prototype.forEach.call(list || [], function (file) {
        self.queue({ message: "", files: [{ file: file, name: file.name || "pasted-image.png", size: file.size,
                                            type: file.type, id: null, progress: 0 }] });
      });
    };

    /** Upload the item's files that have no id yet, one after the other. */
    proto.uploadFiles = function (item) {
      var self = this;
      return (item.files || []).reduce(function (done, f) {
        return done.then(function () { return f.id ? null : self.uploadOne(item, f, false); });
      }, Promise.resolve());
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
