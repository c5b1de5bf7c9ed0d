// A published knowledge-base article as a page (/help/articles/<id>): the links agents paste into
// chats and automatic replies point here. The content is built element by element from an
// allow-list (never innerHTML): HTML articles are parsed inertly and rebuilt, Markdown is turned
// into paragraphs, headings, lists and code.
(function () {
  "use strict";
  var ALLOWED = { P: 1, H1: 1, H2: 1, H3: 1, H4: 1, UL: 1, OL: 1, LI: 1, STRONG: 1, EM: 1, B: 1, I: 1,
                  CODE: 1, PRE: 1, BR: 1, BLOCKQUOTE: 1, A: 1 };

  function el(tag, text) { var e = document.createElement(tag); if (text) e.textContent = text; return e; }

  function safeHref(href) {
    try { var url = new URL(href, location.href); return /^https?:$/.test(url.protocol) ? url.href : null; }
    catch (e) { return null; }
  }

  /** Rebuild parsed nodes with allowed elements only; everything else keeps just its text. */
  function rebuild(source, target) {
    Array.prototype.forEach.call(source.childNodes, function (node) {
      if (node.nodeType === Node.TEXT_NODE) { target.appendChild(document.createTextNode(node.nodeValue)); return; }
      if (node.nodeType !== Node.ELEMENT_NODE) return;
      if (!ALLOWED[node.tagName]) { rebuild(node, target); return; }
      var copy = el(node.tagName.toLowerCase());
      if (node.tagName === "A") {
        var href = safeHref(node.getAttribute("href") || "");
        if (href) { copy.href = href; copy.rel = "noopener noreferrer"; }
      }
      rebuild(node, copy);
      target.appendChild(copy);
    });
  }

  function markdown(text, target) {
    var list = null, code = null;
    text.split(/\r?\n/).forEach(function (line) {
      if (/^```/.test(line)) {
        if (code) { target.appendChild(code); code = null; } else { code = el("pre"); code.textContent = ""; }
        return;
      }
      if (code) { code.textContent += line + "\n"; return; }
      var item = /^\s*(?:[-*]|\d+\.)\s+(.*)$/.exec(line);
      if (item) {
        if (!list) { list = el(/^\s*\d/.test(line) ? "ol" : "ul"); target.appendChild(list); }
        list.appendChild(el("li", item[1]));
        return;
      }
      list = null;
      var heading = /^(#{1,4})\s+(.*)$/.exec(line);
      if (heading) target.appendChild(el("h" + Math.min(4, heading[1].length + 1), heading[2]));
      else if (line.trim()) target.appendChild(el("p", line.replace(/\*\*|__|`/g, "")));
    });
    if (code) target.appendChild(code);
  }

  function show(article) {
    var main = document.getElementById("article");
    main.replaceChildren();
    document.title = article.title;
    var content = el("div");
    content.className = "content";
    if (article.content_format === "html") {
      rebuild(new DOMParser().parseFromString(article.content, "text/html").body, content);
    } else {
      markdown(article.content, content);
    }
    var meta = el("p", article.category + (article.updated_at ? " · updated " + new Date(article.updated_at).toLocaleDateString() : ""));
    meta.className = "meta";
    main.append(el("h1", article.title), meta, content);
  }

  function fail(text) {
    var main = document.getElementById("article");
    main.replaceChildren(el("h1", "Article not available"), el("p", text));
  }

  var id = location.pathname.split("/").pop();
  fetch("/api/v1/kb/articles/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (response.status === 404) throw new Error("This article does not exist or is not published.");
      if (!response.ok) throw new Error("The article could not be loaded; please try again later.");
      return response.json();
    })
    .then(show, function (err) { fail(err.message); });
})();
