// Files in chats and tickets: upload with progress (POST /api/v1/attachments), the attach
// button (with paste and drop), and how a message's files show: images as thumbnails that open
// the full image, other files as download links. The links are the signed ones the server puts
// in each message.

import { ApiError, bearerToken, el } from "./lib.js";

const ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.pdf,.txt";
const REFUSED = new Set([413, 415, 422]);   // the file itself is refused: retrying cannot help

export function sizeText(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  return bytes >= 1024 ? `${Math.round(bytes / 1024)} KB` : `${bytes} B`;
}

/** Upload one file; resolves to the attachment, rejects with an ApiError (``final`` when the
 *  server refused the file itself). ``onProgress`` gets 0..1. */
export function uploadFile(file, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/attachments");
    const token = bearerToken();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText || "null"); } catch { /* not JSON */ }
      if (xhr.status === 201) { onProgress(1); resolve(body); return; }
      const error = new ApiError(xhr.status, body);
      error.final = REFUSED.has(xhr.status);
      error.message = `${file.name}: ${error.message}`;
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { detail: `${file.name}: the upload failed; check your connection` })));
    const form = new FormData();
    form.append("file", file, file.name || "pasted-image.png");
    onProgress(0);
    xhr.send(form);
  });
}

/** The attach button and its hidden picker; paste into ``input`` and drops on ``zones`` too. */
export function attachControls(onFiles, { input = null, zones = [] } = {}) {
  const picker = el("input", { type: "file", class: "visually-hidden", testid: "attach-input", multiple: true,
    accept: ACCEPT, tabindex: "-1", "aria-hidden": "true" });
  picker.addEventListener("change", () => { onFiles([...picker.files]); picker.value = ""; });
  const button = el("button", { type: "button", class: "btn btn-small attach", testid: "attach",
    "aria-label": "Attach a file", title: "Attach a file (image, PDF or text)", text: "Attach…",
    onclick: () => picker.click() });
  input?.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) { e.preventDefault(); onFiles(files); }
  });
  for (const zone of zones) dropZone(zone, onFiles);
  return [picker, button];
}

/** Files dropped on ``zone`` go to ``onFiles``; the zone is outlined while files hover over it. */
export function dropZone(zone, onFiles) {
  zone.addEventListener("dragover", (e) => {
    if ([...(e.dataTransfer?.types || [])].includes("Files")) { e.preventDefault(); zone.classList.add("dropping"); }
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (e) => {
    zone.classList.remove("dropping");
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) { e.preventDefault(); onFiles(files); }
  });
}

/** A sent message's files. */
export function attachmentList(files) {
  if (!files?.length) return null;
  return el("ul", { class: "files", testid: "attachments" }, files.map((f) => {
    if (f.thumbnail_url) {
      return el("li", { class: "file image" },
        el("a", { href: f.url, target: "_blank", rel: "noopener noreferrer", testid: "attachment-image", title: `Open ${f.name}` },
          el("img", { src: f.thumbnail_url, alt: f.name, loading: "lazy" })));
    }
    return el("li", { class: "file" },
      el("a", { href: f.url, target: "_blank", rel: "noopener noreferrer", testid: "attachment-link",
        text: `${f.name} (${sizeText(f.size || 0)})` }));
  }));
}

/** Files still uploading (or waiting), each with its progress bar (kept on the entry); a failed
 *  entry's files show their names only. */
export function pendingList(files, { failed = false } = {}) {
  if (!files?.length) return null;
  return el("ul", { class: "files", testid: "attachments" }, files.map((f) => {
    f.bar = failed ? null
      : el("progress", { max: 1, value: f.progress || 0, testid: "upload-progress", "aria-label": `Uploading ${f.name}` });
    return el("li", { class: "file pending" }, el("span", { text: f.name }), f.bar);
  }));
}

export function showProgress(f, value) {
  f.progress = value;
  if (f.bar) f.bar.value = value;
}
