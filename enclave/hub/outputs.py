"""What a notebook output may carry to the researcher's browser.

Outputs are untrusted: the kernel (the researcher's code) writes them, and JupyterLab renders the
outputs of cells run in the current session as *trusted*, which means HTML is inserted unsanitised
and its ``<script>`` elements run. A link with a ``download`` attribute and a ``data:`` URL, or a
script that builds a Blob and clicks a link, is then a file leaving the workspace without the
airlock. So the workspace server rewrites every output before the browser sees it (on the kernel's
websocket and in notebooks read from disk):

- only the MIME types of :data:`RENDERED` pass; JavaScript and PDF outputs (and any type the
  workspace has no renderer for) are dropped;
- HTML is cleaned with ``nh3`` (the Rust ``ammonia`` sanitiser) to a whitelist of tags and
  attributes, with links to ``http``, ``https`` and ``mailto`` only and no ``download`` attribute;
- Markdown and SVG cannot be cleaned without changing what they say, so one that holds markup of
  :func:`scan_html`'s list is replaced by its text.

What was removed that could have carried a file (a script, a ``download`` link, a ``data:``,
``blob:`` or ``javascript:`` URL, a JavaScript or PDF output) is returned as *findings*, which the
server audits. Cosmetic changes (a stripped ``style``) are not findings. The page's
Content-Security-Policy (``enclave.hub.config.CONTENT_SECURITY_POLICY``) forbids downloads and
inline scripts as well, so a markup this misses still cannot save a file.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import nh3

#: The output types a workspace renders. Everything else is dropped.
RENDERED = frozenset(
    {
        "text/plain",
        "text/html",
        "text/markdown",
        "text/latex",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/svg+xml",
        "application/json",
    }
)
#: Types whose only use in a browser is to run code or to be saved as a file: dropping one is a finding.
EXECUTABLE = re.compile(
    r"javascript|ecmascript|application/pdf|text/x-python-script|vnd\.jupyter\.widget", re.I
)

_SCHEMES = re.compile(r"^\s*(data|blob|javascript|vbscript|filesystem)\s*:", re.I)
_URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"}
)
_ACTIVE_TAGS = frozenset({"script", "iframe", "frame", "object", "embed", "base", "form", "foreignobject"})
_MARKDOWN_TARGET = re.compile(
    r"\]\(\s*<?\s*(data|blob|javascript|vbscript|filesystem)\s*:|<(data|blob|javascript):", re.I
)

_TAGS = {
    *nh3.ALLOWED_TAGS,
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
    "div", "span", "pre", "code", "p", "br", "hr", "details", "summary", "sub", "sup",
}  # fmt: skip
_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", "title", "id"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "table": {"border"},
}


class _Scanner(HTMLParser):
    """Collects what in a piece of markup could run code or save a file."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def _note(self, what: str) -> None:
        if what not in self.found:
            self.found.append(what)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_TAGS:
            self._note(f"a <{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self._note(f"an event handler ({name})")
            elif name == "download":
                self._note("a link with a download attribute")
            elif name == "srcdoc":
                self._note("an embedded document (srcdoc)")
            elif name in _URL_ATTRIBUTES and value is not None:
                match = _SCHEMES.match(value)
                if match is not None:
                    self._note(f"a {match.group(1).lower()}: URL")

    handle_startendtag = handle_starttag


def scan_html(markup: str) -> list[str]:
    """What in ``markup`` could run code or make the browser save a file (empty when nothing)."""
    scanner = _Scanner()
    try:
        scanner.feed(markup)
        scanner.close()
    except (AssertionError, ValueError):  # HTMLParser's own on hopeless markup
        scanner.found.append("markup that cannot be read")
    return scanner.found


def scan_markdown(text: str) -> list[str]:
    found = scan_html(text)
    match = _MARKDOWN_TARGET.search(text)
    if match is not None:
        found.append(f"a {(match.group(1) or match.group(2)).lower()}: link")
    return found


def _keep_url(tag: str, attribute: str, value: str) -> str | None:
    if attribute in _URL_ATTRIBUTES and _SCHEMES.match(value):
        return None
    return value


def clean_html(markup: str) -> str:
    """``markup`` with nothing that runs or saves: whitelisted tags and attributes, web links only."""
    return nh3.clean(
        markup,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        attribute_filter=_keep_url,
        link_rel="noopener noreferrer",
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return str(value)


def removed_notice(findings: list[str]) -> str:
    return "[Enclave removed this output: " + "; ".join(findings) + ". Files leave only through the airlock.]"


def clean_bundle(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An output's MIME bundle as the browser may see it, and the findings (what was removed that
    could run code or save a file)."""
    kept: dict[str, Any] = {}
    findings: list[str] = []
    for mime, value in data.items():
        if mime not in RENDERED:
            if EXECUTABLE.search(mime):
                findings.append(f"an output of type {mime}")
            continue
        if mime == "text/html":
            text = _text(value)
            found = scan_html(text)
            findings.extend(found)
            kept[mime] = clean_html(text) + (
                f"<p><strong>{html.escape(removed_notice(found))}</strong></p>" if found else ""
            )
        elif mime == "text/markdown":
            text = _text(value)
            found = scan_markdown(text)
            findings.extend(found)
            if not found:
                kept[mime] = value
        elif mime == "image/svg+xml":
            text = _text(value)
            found = scan_html(text)
            if re.search(r"<a[\s>]", text, re.I):
                found.append("a link in an SVG image")
            findings.extend(found)
            if not found:
                kept[mime] = value
        else:
            kept[mime] = value
    findings = list(dict.fromkeys(findings))
    if findings and "text/plain" not in kept:
        kept["text/plain"] = removed_notice(findings)
    elif not kept:
        kept["text/plain"] = "[Enclave: this output has no type a workspace shows]"
    return kept, findings


#: The messages of the kernel protocol whose content carries a MIME bundle under ``data``.
BUNDLE_MESSAGES = frozenset({"display_data", "execute_result", "update_display_data"})


def clean_message(msg_type: str, content: dict[str, Any]) -> list[str]:
    """Clean a kernel message's content in place (outputs, and the pager's payloads of an
    ``execute_reply``); returns the findings."""
    findings: list[str] = []
    if msg_type in BUNDLE_MESSAGES and isinstance(content.get("data"), dict):
        content["data"], findings = clean_bundle(content["data"])
    elif msg_type == "execute_reply":
        for payload in content.get("payload") or []:
            if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
                payload["data"], found = clean_bundle(payload["data"])
                findings.extend(found)
    return findings


def clean_notebook(notebook: dict[str, Any]) -> list[str]:
    """Clean every output of a notebook in place and return the findings, including those of
    Markdown cells (which are the researcher's own text: scanned and reported, never rewritten;
    the page's policy stops what they could do)."""
    findings: list[str] = []
    for cell in notebook.get("cells") or []:
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "markdown":
            findings.extend(scan_markdown(_text(cell.get("source", ""))))
        for output in cell.get("outputs") or []:
            if isinstance(output, dict) and isinstance(output.get("data"), dict):
                output["data"], found = clean_bundle(output["data"])
                findings.extend(found)
    return list(dict.fromkeys(findings))
