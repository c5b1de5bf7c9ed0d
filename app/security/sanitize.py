"""HTML cleaning with an allow-list (nh3), for HTML, for the HTML inside Markdown and for titles.

- :func:`clean_html`: an HTML document cleaned by nh3 with the allow-list below.
- :func:`clean_markdown`: Markdown whose raw HTML is cleaned with the same allow-list, while the
  Markdown itself stays as written (``>`` quotes, ``&``, ``<https://autolinks>``, code). Markdown
  renderers pass raw HTML through, so a client that renders the text is then safe. Code spans and
  fenced code blocks keep their text (a renderer shows it as text) unless they sit in a raw HTML
  block, where a renderer would not treat them as code; in doubt the text is cleaned.
  Links (inline, reference definitions and autolinks) keep only safe schemes.
- :func:`clean_title`: text with every tag removed.

Plain text is stored as given and rendered as text.
"""

from __future__ import annotations

import html
import re

import nh3

_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_URL_ATTRIBUTES = {"href", "src"}
_LINK_REL = "noopener noreferrer"
_DROP_CONTENT = {"script", "style"}  # removed with their content, as nh3 does


def clean_html(html_text: str) -> str:
    return nh3.clean(html_text, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=URL_SCHEMES, link_rel=_LINK_REL)


def clean_title(title: str) -> str:
    """Every tag goes (their text stays); entities are read back, so ``Q&A`` stays ``Q&A``.
    Repeated until nothing changes, so text written as entities cannot come back as a tag."""
    for _ in range(10):
        cleaned = html.unescape(nh3.clean(title, tags=set()))
        if cleaned == title:
            break
        title = cleaned
    return " ".join(title.split())


# ---------------------------------------------------------------- Markdown


def _safe_url(url: str) -> bool:
    """A relative URL, or an absolute one with an allowed scheme (entities and control
    characters are read as a renderer would before the scheme is checked)."""
    text = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url))
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", text)
    return scheme is None or scheme.group(1).lower() in URL_SCHEMES


# CommonMark's raw HTML grammar (https://spec.commonmark.org/0.31.2/#raw-html).
_ATTRIBUTE = r"""\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:[^\s"'=<>`]+|'[^']*'|"[^"]*"))?"""
_TAG = re.compile(rf"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:{_ATTRIBUTE})*)\s*(/?)>")
_ONE_ATTRIBUTE = re.compile(r"""\s+([A-Za-z_:][A-Za-z0-9_.:-]*)(?:\s*=\s*([^\s"'=<>`]+|'[^']*'|"[^"]*"))?""")
_OTHER_HTML = re.compile(r"<!--.*?-->|<\?.*?\?>|<![A-Za-z][^>]*>|<!\[CDATA\[.*?\]\]>", re.S)
_URI_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
_EMAIL_AUTOLINK = re.compile(
    r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*>"
)
_STRAY_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_BACKTICKS = re.compile(r"`+")


def _clean_tag(match: re.Match) -> str:
    closing, name, attributes, self_closing = match.group(1), match.group(2).lower(), match.group(3), match.group(4)
    if name not in _TAGS:
        return ""
    if closing:
        return f"</{name}>"
    kept = []
    for attr in _ONE_ATTRIBUTE.finditer(attributes):
        key, raw = attr.group(1).lower(), attr.group(2)
        if key not in _ATTRIBUTES.get(name, ()) or raw is None:
            continue
        value = html.unescape(raw[1:-1] if raw[:1] in "\"'" else raw)
        if key in _URL_ATTRIBUTES and not _safe_url(value):
            continue
        kept.append(f' {key}="{html.escape(value, quote=True)}"')
    if name == "a":
        kept.append(f' rel="{_LINK_REL}"')
    return f"<{name}{''.join(kept)}{' /' if self_closing else ''}>"


def _clean_inline(text: str, *, code_spans: bool) -> str:
    """Clean the raw HTML in a run of Markdown text, left to right as a renderer reads it:
    tags and autolinks first, then code spans (kept as written when ``code_spans``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "`" and code_spans:
            run = _BACKTICKS.match(text, i).group()  # type: ignore[union-attr]  # text[i] is a backtick
            end = re.compile(rf"(?<!`){run}(?!`)").search(text, i + len(run))
            if end is not None:
                out.append(text[i : end.end()])
                i = end.end()
            else:
                out.append(run)
                i += len(run)
            continue
        if char != "<":
            nxt = min(
                (p for p in (text.find("<", i), text.find("`", i) if code_spans else -1) if p >= 0), default=len(text)
            )
            out.append(text[i:nxt])
            i = nxt
            continue
        if (autolink := _URI_AUTOLINK.match(text, i)) is not None:
            out.append(autolink.group() if _safe_url(autolink.group(1)) else "&lt;" + autolink.group()[1:])
            i = autolink.end()
        elif (email := _EMAIL_AUTOLINK.match(text, i)) is not None:
            out.append(email.group())
            i = email.end()
        elif (other := _OTHER_HTML.match(text, i)) is not None:
            i = other.end()  # comments, declarations: gone
        elif (tag := _TAG.match(text, i)) is not None:
            name = tag.group(2).lower()
            i = tag.end()
            if name in _DROP_CONTENT and not tag.group(1):
                close = re.compile(rf"</{name}\s*>", re.I).search(text, i)
                i = close.end() if close else len(text)
            else:
                out.append(_clean_tag(tag))
        elif _STRAY_TAG_START.match(text, i):
            out.append("&lt;")  # shows as "<"; a browser never reads a tag
            i += 1
        else:
            out.append("<")
            i += 1
    return "".join(out)


_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")  # only at column 0: never inside a container
# A line that may open an HTML block, also inside quotes and list items (in doubt: yes); group 1
# is the HTML. Types 1-5 end at a marker (https://spec.commonmark.org/0.31.2/#html-blocks).
_HTML_BLOCK_START = re.compile(r"^(?:[ \t]*(?:>|[-*+](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*(<[A-Za-z/!?].*)$")
_HTML_BLOCK_ENDS = [
    (
        re.compile(r"<(?:script|pre|style|textarea)(?:\s|>|$)", re.I),
        re.compile(r"</(?:script|pre|style|textarea)>", re.I),
    ),
    (re.compile(r"<!--"), re.compile(r"-->")),
    (re.compile(r"<\?"), re.compile(r"\?>")),
    (re.compile(r"<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"<!\[CDATA\["), re.compile(r"\]\]>")),
]
# No brackets in a destination here, so one match never swallows the next link ("](" each checked).
_LINK_DESTINATION = re.compile(r"(\]\(\s*)(<[^<>\n]*>|[^\s()<>\[\]]*(?:\([^\s()\[\]]*\)[^\s()<>\[\]]*)*)")
_DEFINITION = re.compile(r"^( {0,3}\[[^\]]+\]:[ \t]*\n?[ \t]*)(<[^<>\n]*>|\S+)", re.M)  # URL may be on the next line


def _clean_link_destinations(text: str) -> str:
    """Inline links and images, and reference definitions, with an unsafe scheme lose it."""

    def check(match: re.Match) -> str:
        url = match.group(2)
        inner = url[1:-1] if url.startswith("<") else url
        return match.group(0) if _safe_url(inner) else match.group(1) + "#"

    return _DEFINITION.sub(check, _LINK_DESTINATION.sub(check, text))


def clean_markdown(text: str) -> str:
    """Markdown with its raw HTML cleaned (see the module docstring). Repeated until nothing
    changes: removing a tag must not join what is left into a new one (``<<x>script>``)."""
    for _ in range(20):
        cleaned = _clean_markdown_once(text)
        if cleaned == text:
            return cleaned
        text = cleaned
    return html.escape(text, quote=False)  # never reached in practice: give up on markup


def _clean_markdown_once(text: str) -> str:
    out: list[str] = []
    prose: list[str] = []  # a run of Markdown lines (code spans kept)
    block: list[str] = []  # a run of raw HTML lines (no code in there)
    fence: str | None = None
    end_marker: re.Pattern | None = None

    def flush() -> None:
        if prose:
            out.append(_clean_link_destinations(_clean_inline("\n".join(prose), code_spans=True)))
            prose.clear()
        if block:  # a renderer reads no links in raw HTML, but once tags go it may
            out.append(_clean_link_destinations(_clean_inline("\n".join(block), code_spans=False)))
            block.clear()

    for line in text.split("\n"):
        if fence is not None:  # fenced code: kept as written
            out.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        if block:
            # A raw HTML block runs to a blank line; types 1-5 first to their end marker.
            if end_marker is not None:
                block.append(line)
                if end_marker.search(line):
                    end_marker = None
                continue
            if line.strip():
                block.append(line)
                continue
        opening = _FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            flush()
            fence = opening.group(1)
            out.append(line)
            continue
        if (start := _HTML_BLOCK_START.match(line)) is not None:
            flush()
            block.append(line)
            html = start.group(1)
            end_marker = next((end for begin, end in _HTML_BLOCK_ENDS if begin.match(html)), None)
            if end_marker is not None and end_marker.search(html, 1):
                end_marker = None
            continue
        if not line.strip():
            flush()
            out.append(line)
            continue
        prose.append(line)
    flush()
    return "\n".join(out)
