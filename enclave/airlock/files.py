"""File intake for output requests: refuse what must not leave, neutralise what could harm the reader.

Every file a researcher adds to an output request passes through :func:`intake` before it is stored
in the holding area. Intake is strict because the files leave the enclave and are opened on other
people's machines:

* **Names** are relative paths of plain segments (no ``..``, no absolute paths, no backslashes, no
  control or invisible characters, no hidden files): a name becomes a path in the release store and
  in the downloader's file system.
* **Types** are an allowlist (CSV/TSV, PNG, JPEG, SVG, HTML, plain text, Markdown, JSON), decided by
  the extension *and* confirmed from the content (magic bytes, UTF-8, parse): a file whose content
  is not what its name says is refused, and so is every archive, because its members would escape
  every check.
* **Sanitising**: spreadsheet formulas in CSV/TSV cells are neutralised (a leading single quote, the
  OWASP "CSV injection" advice), images are re-encoded from their pixels so EXIF, GPS, text chunks
  and ICC profiles are gone, and SVG and HTML are rewritten through allowlists that keep no script,
  no event handler and no external reference (nothing the reader's browser would fetch or run).

The result is a :class:`SanitisedFile`: the payload to store, its SHA-256, and the sentences that
say what was changed, which the reviewer sees next to the automated checks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from xml.etree.ElementTree import Element, tostring

import nh3
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml
from PIL import Image, ImageOps, UnidentifiedImageError

from enclave.domain.errors import InvalidInput, PayloadTooLarge
from enclave.domain.outputs.files import (
    DEFAULT_LIMITS,
    IMAGE_KINDS,
    TABLE_KINDS,
    FileKind,
    Limits,
    SanitisedFile,
)

EXTENSIONS: dict[str, FileKind] = {
    ".csv": FileKind.CSV,
    ".tsv": FileKind.TSV,
    ".png": FileKind.PNG,
    ".jpg": FileKind.JPEG,
    ".jpeg": FileKind.JPEG,
    ".svg": FileKind.SVG,
    ".html": FileKind.HTML,
    ".htm": FileKind.HTML,
    ".txt": FileKind.TEXT,
    ".md": FileKind.MARKDOWN,
    ".json": FileKind.JSON,
}

ARCHIVE_EXTENSIONS = frozenset(
    {".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".zst", ".lz4", ".jar", ".whl", ".cab"}
)

# Binary signatures: (offset, magic, what it is, is it an archive)
_SIGNATURES: tuple[tuple[int, bytes, str, bool], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png", False),
    (0, b"\xff\xd8\xff", "jpeg", False),
    (0, b"GIF87a", "a GIF image", False),
    (0, b"GIF89a", "a GIF image", False),
    (0, b"%PDF-", "a PDF document", False),
    (0, b"PK\x03\x04", "a ZIP archive (or an Office document, which is one)", True),
    (0, b"PK\x05\x06", "a ZIP archive", True),
    (0, b"PK\x07\x08", "a ZIP archive", True),
    (0, b"\x1f\x8b", "a gzip archive", True),
    (0, b"BZh", "a bzip2 archive", True),
    (0, b"\xfd7zXZ\x00", "an xz archive", True),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", True),
    (0, b"Rar!\x1a\x07", "a RAR archive", True),
    (0, b"\x28\xb5\x2f\xfd", "a Zstandard archive", True),
    (0, b"\x04\x22\x4d\x18", "an LZ4 archive", True),
    (0, b"MSCF", "a cabinet archive", True),
    (257, b"ustar", "a tar archive", True),
    (0, b"PAR1", "a Parquet data file", False),
    (0, b"ARROW1", "an Arrow data file", False),
    (0, b"SQLite format 3\x00", "an SQLite database", False),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document", False),
    (0, b"\x7fELF", "an executable", False),
    (0, b"RIFF", "a RIFF media file (WebP, WAV or AVI)", False),
)


# --- names ----------------------------------------------------------------------------------------

_NAME_PUNCTUATION = frozenset(" ._-()+,")
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}
)


def validate_file_name(name: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[str, FileKind]:
    """The normalised (NFC) name and the kind its extension declares, or ``InvalidInput``.

    A name may have folders (``figures/age.png``) but never leaves its request's folder: no absolute
    path, no ``..``, no backslash, no drive letter, no hidden or reserved name, nothing invisible.
    """
    if not name or not name.strip():
        raise InvalidInput("a file needs a name")
    if len(name) > limits.max_name_length:
        raise InvalidInput(f"file names are limited to {limits.max_name_length} characters")
    normal = unicodedata.normalize("NFC", name)
    shown = normal.encode("ascii", "backslashreplace").decode("ascii")
    if any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} for c in normal):
        raise InvalidInput(f"the file name {shown!r} contains control or invisible characters; rename it")
    if "\\" in normal:
        raise InvalidInput(f"the file name {shown!r} contains a backslash; use / between folders")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        raise InvalidInput(
            f"the file name {shown!r} is an absolute path; give a path relative to the request"
        )
    segments = normal.split("/")
    if ".." in segments or "." in segments:
        raise InvalidInput(f"the file name {shown!r} uses . or .. as a folder; that is not allowed")
    if "" in segments:
        raise InvalidInput(f"the file name {shown!r} has an empty folder name")
    if len(segments) > limits.max_path_depth:
        raise InvalidInput(f"the file name {shown!r} is nested deeper than {limits.max_path_depth} levels")
    for seg in segments:
        if seg.startswith(".") or seg.startswith("-"):
            raise InvalidInput(f"{seg!r} starts with {seg[0]!r}; hidden or option-like names are not allowed")
        if seg != seg.strip() or seg.endswith("."):
            raise InvalidInput(f"{seg!r} begins or ends with a space or ends with a dot; rename it")
        odd = sorted({c for c in seg if not (c.isalnum() or c in _NAME_PUNCTUATION)})
        if odd:
            raise InvalidInput(
                f"the file name {shown!r} contains {' '.join(odd)};"
                " use letters, digits, spaces and . _ - ( ) + ,"
            )
        if seg.split(".")[0].lower() in _RESERVED_STEMS:
            raise InvalidInput(f"{seg!r} is a reserved device name on Windows; rename it")
    last = segments[-1].lower()
    ext = "." + last.rsplit(".", 1)[1] if "." in last else ""
    if ext in ARCHIVE_EXTENSIONS:
        raise InvalidInput(
            f"{shown!r} is an archive; archives are not accepted, add each file separately so each is checked"
        )
    if ext not in EXTENSIONS:
        allowed = ", ".join(sorted(EXTENSIONS))
        what = f"{ext} files are" if ext else "files without an extension are"
        raise InvalidInput(f"{what} not accepted ({shown!r}); allowed: {allowed}")
    return normal, EXTENSIONS[ext]


# --- type detection -------------------------------------------------------------------------------


def sniff(content: bytes) -> tuple[str, bool] | None:
    """What the magic bytes say the content is, and whether that is an archive; None for no signature."""
    for offset, magic, what, archive in _SIGNATURES:
        if content[offset : offset + len(magic)] == magic:
            return what, archive
    return None


def detect_kind(content: bytes) -> FileKind | None:
    """The kind the content itself shows, without a name: images by magic bytes; text by parsing.

    Used by the file-type check; for text the answer is the most specific kind that parses (JSON,
    SVG, HTML, then TSV/CSV when the rows have a consistent width of two or more columns, else plain
    text). Markdown cannot be told from plain text, so it is reported as text.
    """
    sniffed = sniff(content)
    if sniffed is not None:
        return {"png": FileKind.PNG, "jpeg": FileKind.JPEG}.get(sniffed[0])
    try:
        text = _decode(content, "content")[0]
    except InvalidInput:
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return FileKind.JSON
    if _xml_root_is_svg(stripped):
        return FileKind.SVG
    if _looks_like_html(stripped):
        return FileKind.HTML
    for kind, delimiter in ((FileKind.TSV, "\t"), (FileKind.CSV, ",")):
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
        except csv.Error:
            continue
        rows = _trim_trailing_blank(rows)
        widths = {len(r) for r in rows}
        if rows and len(widths) == 1 and widths.pop() >= 2:
            return kind
    return FileKind.TEXT


def _xml_root_is_svg(stripped: str) -> bool:
    return bool(
        re.match(r"(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?<svg[\s>]", stripped, re.S)
    )


def _looks_like_html(stripped: str) -> bool:
    head = stripped[:2048].lower()
    return bool(re.match(r"(<!--.*?-->\s*)*(<!doctype html|<html|<head|<body)", head, re.S)) or bool(
        re.match(r"<(div|table|p|h[1-6]|style|script|meta|title)[\s>]", head)
    )


_ACTIVE_MARKUP = re.compile(r"<\s*(script|iframe|object|embed)\b|javascript\s*:", re.I)


# --- intake ---------------------------------------------------------------------------------------


def check_request_limits(files: Sequence[tuple[str, int]], *, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a request with too many files, too many bytes, or two files that would collide.

    ``files`` are (name, size) pairs of every file in the request version. Names are compared
    case-insensitively because downloads land on file systems that do so.
    """
    if len(files) > limits.max_files:
        raise InvalidInput(
            f"an output request holds at most {limits.max_files} files; this one has {len(files)}"
        )
    total = sum(size for _, size in files)
    if total > limits.max_request_bytes:
        raise PayloadTooLarge(
            f"the files of this output request add up to {total} bytes;"
            f" the limit is {limits.max_request_bytes}"
        )
    clashes = sorted(n for n, c in Counter(name.casefold() for name, _ in files).items() if c > 1)
    if clashes:
        raise InvalidInput(f"two files are named {clashes[0]!r} (ignoring case); rename one")


def intake(name: str, content: bytes, *, limits: Limits = DEFAULT_LIMITS) -> SanitisedFile:
    """Validate one uploaded file and return its sanitised payload, or raise.

    Raises ``InvalidInput`` for a bad name, a type that is not allowed, an archive, content that
    does not match the name, non-UTF-8 text, a ragged table or malformed JSON/SVG/image, and
    ``PayloadTooLarge`` over ``limits.max_file_bytes``. Nothing is written anywhere.
    """
    clean_name, kind = validate_file_name(name, limits=limits)
    changes: list[str] = []
    if clean_name != name:
        changes.append("normalised the file name to Unicode NFC")
    if len(content) > limits.max_file_bytes:
        raise PayloadTooLarge(
            f"{clean_name} is {len(content)} bytes; files are limited to {limits.max_file_bytes} bytes"
        )
    if not content:
        raise InvalidInput(f"{clean_name} is empty")
    sniffed = sniff(content)
    if sniffed is not None:
        what, archive = sniffed
        if archive:
            raise InvalidInput(f"{clean_name} is {what}; archives are not accepted, add each file separately")
        expected = {FileKind.PNG: "png", FileKind.JPEG: "jpeg"}.get(kind)
        if what != expected:
            shown = {"png": "a PNG image", "jpeg": "a JPEG image"}.get(what, what)
            raise InvalidInput(f"{clean_name} is named as {kind.value} but its content is {shown}")
    elif kind in IMAGE_KINDS:
        raise InvalidInput(f"{clean_name} is named as a {kind.value.upper()} image but is not one")

    if kind in IMAGE_KINDS:
        payload, more = _sanitise_image(clean_name, content, kind, limits)
    else:
        text, bom = _decode(content, clean_name)
        if bom:
            changes.append("removed the UTF-8 byte order mark")
        payload, more = _sanitise_text(clean_name, text, kind, limits)
    changes += more
    return SanitisedFile(
        name=clean_name,
        kind=kind,
        content=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        original_sha256=hashlib.sha256(content).hexdigest(),
        original_size=len(content),
        changes=tuple(changes),
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _decode(content: bytes, name: str) -> tuple[str, bool]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(
            f"{name} is not UTF-8 text (invalid byte at position {e.start}); save it as UTF-8"
        ) from None
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    bad = _CONTROL.search(text)
    if bad is not None:
        raise InvalidInput(
            f"{name} contains a control character (U+{ord(bad.group()):04X}); it is not plain text"
        )
    return text, bom


def _sanitise_text(name: str, text: str, kind: FileKind, limits: Limits) -> tuple[bytes, list[str]]:
    stripped = text.lstrip()
    markup = _xml_root_is_svg(stripped) or _looks_like_html(stripped) or stripped.startswith("<?xml")
    if markup and kind not in (FileKind.SVG, FileKind.HTML):
        raise InvalidInput(f"{name} is named as {kind.value} but its content is HTML/XML markup")
    if kind in (FileKind.CSV, FileKind.TSV, FileKind.TEXT, FileKind.MARKDOWN) and stripped[:1] in ("{", "["):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            raise InvalidInput(f"{name} is named as {kind.value} but its content is JSON; name it .json")
    if kind in (FileKind.TEXT, FileKind.MARKDOWN) and _ACTIVE_MARKUP.search(text):
        raise InvalidInput(f"{name} contains a script, an embedded object or a javascript: link; remove it")
    if kind in TABLE_KINDS:
        return _sanitise_table(name, text, kind, limits)
    if kind is FileKind.JSON:
        _parse_json(name, text)
        return text.encode("utf-8"), []
    if kind is FileKind.SVG:
        return _sanitise_svg(name, text)
    if kind is FileKind.HTML:
        if _xml_root_is_svg(stripped):
            raise InvalidInput(f"{name} is named as html but its content is SVG; name it .svg")
        if not re.search(r"<[A-Za-z!]", text):
            raise InvalidInput(f"{name} is named as html but contains no HTML markup")
        return _sanitise_html(text)
    return text.encode("utf-8"), []


def _parse_json(name: str, text: str) -> None:
    def refuse_constant(value: str) -> None:
        raise ValueError(f"{value} is not valid JSON")

    try:
        json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{name} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except ValueError as e:
        raise InvalidInput(f"{name} is not valid JSON ({e})") from None
    except RecursionError:
        raise InvalidInput(f"{name} is nested too deeply to be read as JSON") from None


# --- tables ---------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading single quote; numbers stay numbers.

    ``=1+2``, ``+cmd``, ``@SUM(A1)``, ``-2+3`` and cells starting with a tab or carriage return are
    prefixed; ``-12``, ``+3.5`` and ``-1e-3`` are plain numbers and are left alone.
    """
    if cell.startswith(_FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _trim_trailing_blank(rows: list[list[str]]) -> list[list[str]]:
    while rows and rows[-1] == []:
        rows.pop()
    return rows


def _sanitise_table(name: str, text: str, kind: FileKind, limits: Limits) -> tuple[bytes, list[str]]:
    delimiter = "\t" if kind is FileKind.TSV else ","
    try:
        rows = _trim_trailing_blank(list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)))
    except csv.Error as e:
        raise InvalidInput(f"{name} is not a well-formed {kind.value.upper()} file ({e})") from None
    if not rows:
        raise InvalidInput(f"{name} has no rows")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise InvalidInput(
                f"{name} has ragged rows: row {number} has {len(row)} fields but the header has {width}"
            )
    if width > limits.max_table_columns:
        raise InvalidInput(f"{name} has {width} columns; tables are limited to {limits.max_table_columns}")
    if width == 1:
        for other, label in (("\t", "tab"), (";", "semicolon"), (",", "comma")):
            if other != delimiter and all(other in r[0] for r in rows):
                raise InvalidInput(
                    f"{name} looks {label}-separated but is named as {kind.value}; save it comma-separated as"
                    " .csv or tab-separated as .tsv"
                )
    neutralised = 0
    cleaned: list[list[str]] = []
    for row in rows:
        new = [neutralise_cell(c) for c in row]
        neutralised += sum(a != b for a, b in zip(row, new, strict=True))
        cleaned.append(new)
    if not neutralised:
        return text.encode("utf-8"), []
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(cleaned)
    return out.getvalue().encode("utf-8"), [
        f"neutralised {neutralised} cell(s) that a spreadsheet would run as a formula (prefixed with ')"
    ]


# --- HTML -----------------------------------------------------------------------------------------

_HTML_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_HTML_ATTRIBUTES["*"] = {"class", "title", "lang", "dir", "id"}
_HTML_DROPPED_WITH_CONTENT = {"script", "style", "title", "template", "iframe", "object", "embed", "noscript"}
_EMBEDDED_IMAGE = re.compile(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/=\s]*")
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc", "action", "srcset", "poster", "background"})


def _html_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep in-page links and embedded PNG/JPEG images; drop every URL that would be fetched."""
    if attribute not in _URL_ATTRIBUTES:
        return value
    if tag == "a" and attribute == "href" and value.startswith("#"):
        return value
    if tag == "img" and attribute == "src" and _EMBEDDED_IMAGE.fullmatch(value):
        return value
    return None


def _sanitise_html(text: str) -> tuple[bytes, list[str]]:
    found = []
    if re.search(r"<\s*script\b", text, re.I):
        found.append("scripts")
    if re.search(r"<[^>]*\son[a-z]+\s*=", text, re.I):
        found.append("event handler attributes")
    if re.search(
        r"<\s*(link|iframe|object|embed|base|meta|form)\b|(src|href|action|srcset|poster|background)\s*=\s*['\"]?"
        r"\s*(?!#|data:image/(png|jpeg);)[^\s'\">]",
        text,
        re.I,
    ):
        found.append("external references")
    body = nh3.clean(
        text,
        attributes=_HTML_ATTRIBUTES,
        attribute_filter=_html_attribute,
        clean_content_tags=_HTML_DROPPED_WITH_CONTENT,
        url_schemes={"data"},
        link_rel=None,
        strip_comments=True,
    )
    page = f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"></head>\n<body>\n{body}\n</body>\n</html>\n'
    changes = ["rewrote the HTML through an allowlist: only text formatting, tables and embedded images kept"]
    if found:
        changes.append(f"removed {', '.join(found)}")
    return page.encode("utf-8"), changes


# --- SVG ------------------------------------------------------------------------------------------

SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_SVG_ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "title", "desc", "path", "rect", "circle", "ellipse", "line", "polyline",
        "polygon", "text", "tspan", "textPath", "clipPath", "mask", "linearGradient", "radialGradient",
        "stop", "marker", "pattern", "symbol", "use", "style", "image",
    }
)  # fmt: skip
_SVG_DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "foreignObject", "metadata", "iframe", "animate", "animateMotion", "animateTransform",
        "set", "handler", "listener", "discard",
    }
)  # fmt: skip
_EXTERNAL_IN_VALUE = re.compile(r"url\(\s*['\"]?\s*(?!#)|@import|javascript\s*:|expression\s*\(", re.I)


def _sanitise_svg(name: str, text: str) -> tuple[bytes, list[str]]:
    """Parse safely (no entities, no external DTD fetch) and rebuild from allowlisted elements."""
    try:
        root = parse_xml(text.encode("utf-8"), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise InvalidInput(
            f"{name} declares XML entities or external resources; they are not accepted"
        ) from None
    except ParseError as e:
        raise InvalidInput(f"{name} is not well-formed SVG ({e})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise InvalidInput(f"{name} is named as svg but its root element is not an SVG <svg> (with xmlns)")
    removed: set[str] = set()
    _clean_svg_attributes(root, removed)
    _clean_svg_children(root, removed)
    _strip_namespaces(root)
    root.set("xmlns", SVG_NS)
    body = tostring(root, encoding="unicode")
    changes = ["rewrote the SVG through an allowlist of drawing elements"]
    if removed:
        changes.append(f"removed {', '.join(sorted(removed))}")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8"), changes


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _clean_svg_children(parent: Element, removed: set[str]) -> None:
    """Keep allowed children, drop dangerous ones with their content, unwrap unknown ones.

    Text that follows a removed element (its ``tail``) or sits inside an unwrapped one stays, so a
    label such as ``<text>see <a href="...">this</a> note</text>`` keeps its words.
    """
    kept: list[Element] = []

    def keep_text(text: str | None) -> None:
        if not text:
            return
        if kept:
            kept[-1].tail = (kept[-1].tail or "") + text
        else:
            parent.text = (parent.text or "") + text

    for child in list(parent):
        if not isinstance(child.tag, str):
            keep_text(child.tail)
            continue
        ns, local = _split(child.tag)
        if ns != SVG_NS or local in _SVG_DROPPED_WITH_CONTENT:
            removed.add(f"<{local}> elements")
            keep_text(child.tail)
            continue
        _clean_svg_attributes(child, removed)
        _clean_svg_children(child, removed)
        if local not in _SVG_ELEMENTS:
            removed.add(f"<{local}> wrappers (their drawing kept)")
            keep_text(child.text)
            for grandchild in child:
                kept.append(grandchild)
            keep_text(child.tail)
            continue
        if local == "style" and child.text and _EXTERNAL_IN_VALUE.search(child.text):
            removed.add("style sheets with external references")
            keep_text(child.tail)
            continue
        kept.append(child)
    parent[:] = kept


def _clean_svg_attributes(element: Element, removed: set[str]) -> None:
    _, tag = _split(element.tag)
    for key, value in list(element.attrib.items()):
        ns, local = _split(key)
        del element.attrib[key]
        if ns not in ("", _XLINK_NS, _XML_NS) or (ns == _XLINK_NS and local != "href"):
            removed.add("editor metadata attributes")
            continue
        if local.lower().startswith("on"):
            removed.add("event handler attributes")
            continue
        if local == "href":
            internal = value.startswith("#")
            embedded = tag == "image" and _EMBEDDED_IMAGE.fullmatch(value) is not None
            if not (internal or embedded):
                removed.add("external references")
                continue
        elif _EXTERNAL_IN_VALUE.search(value):
            removed.add("external references")
            continue
        element.set(f"{{{_XML_NS}}}{local}" if ns == _XML_NS else local, value)


def _strip_namespaces(element: Element) -> None:
    element.tag = _split(element.tag)[1]
    for child in element:
        _strip_namespaces(child)


# --- images ---------------------------------------------------------------------------------------

_BENIGN_IMAGE_INFO = frozenset(
    {"dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive", "progression"}
)


def _sanitise_image(name: str, content: bytes, kind: FileKind, limits: Limits) -> tuple[bytes, list[str]]:
    """Re-encode from pixels: nothing but the picture survives (EXIF, GPS, text chunks, ICC, XMP)."""
    fmt = "PNG" if kind is FileKind.PNG else "JPEG"
    label = f"{name} is not a valid {fmt} image"
    changes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(content), formats=[fmt]) as img:
                if img.width * img.height > limits.max_image_pixels:
                    raise InvalidInput(
                        f"{name} is {img.width}x{img.height} pixels; images are limited to"
                        f" {limits.max_image_pixels} pixels"
                    )
                if getattr(img, "n_frames", 1) > 1:
                    raise InvalidInput(
                        f"{name} has several frames (animated or multi-picture); only single still images"
                        " are accepted"
                    )
                img.load()
                dropped = sorted(str(k) for k in img.info if k not in _BENIGN_IMAGE_INFO)
                exif = img.getexif()
                if exif:
                    dropped = sorted({*dropped, "exif"})
                oriented = ImageOps.exif_transpose(img)
                if exif.get(0x0112, 1) != 1:
                    changes.append("applied the EXIF orientation to the pixels")
                has_alpha = oriented.mode in ("RGBA", "LA", "PA") or "transparency" in oriented.info
                keep = ("L", "LA", "RGB", "RGBA") if kind is FileKind.PNG else ("L", "RGB")
                if oriented.mode not in keep:
                    oriented = oriented.convert("RGBA" if has_alpha and kind is FileKind.PNG else "RGB")
                clean = Image.frombytes(oriented.mode, oriented.size, oriented.tobytes())
        except (
            UnidentifiedImageError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ):
            raise InvalidInput(label) from None
        except OSError as e:
            raise InvalidInput(f"{label} ({e})") from None
    out = io.BytesIO()
    if kind is FileKind.PNG:
        clean.save(out, "PNG")
    else:
        clean.save(out, "JPEG", quality=95)
    if dropped:
        changes.append(f"re-encoded the image without its metadata (removed: {', '.join(dropped)})")
    else:
        changes.append("re-encoded the image from its pixels (it carried no metadata)")
    return out.getvalue(), changes
