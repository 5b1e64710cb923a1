"""The cleaning of notebook outputs before a workspace's browser renders them (enclave.hub.outputs)."""

from __future__ import annotations

import pytest

from enclave.hub.outputs import clean_bundle, clean_message, clean_notebook, scan_html

DATA = "data:text/csv;base64,YSxiCg=="


@pytest.mark.parametrize(
    ("markup", "finding"),
    [
        (f'<a download="x.csv" href="{DATA}">x</a>', "a link with a download attribute"),
        (f'<a href="{DATA}">x</a>', "a data: URL"),
        ('<a href="blob:http://h/1">x</a>', "a blob: URL"),
        ('<a href=" JavaScript:alert(1)">x</a>', "a javascript: URL"),
        ("<script>fetch('/')</script>", "a <script> element"),
        ('<img src="x" onerror="alert(1)">', "an event handler (onerror)"),
        ('<iframe srcdoc="&lt;a download&gt;"></iframe>', "a <iframe> element"),
        ('<form action="/x"><button>go</button></form>', "a <form> element"),
        ('<svg><foreignObject><a href="x">y</a></foreignObject></svg>', "a <foreignobject> element"),
    ],
)
def test_what_could_save_or_run_is_a_finding_and_is_removed(markup: str, finding: str) -> None:
    assert finding in scan_html(markup)
    kept, findings = clean_bundle({"text/html": markup})
    assert finding in findings
    html, notice = kept["text/html"].split("<p><strong>[Enclave removed this output", 1)
    for gone in ("download=", "data:text", "blob:", "javascript:", "<script", "onerror", "<iframe", "<form"):
        assert gone not in html.lower(), (gone, html)
    assert (
        finding.replace("<", "&lt;").replace(">", "&gt;") in notice
    )  # the researcher is told, in the output


def test_a_dataframe_keeps_its_table_and_a_harmless_output_is_no_finding() -> None:
    table = (
        '<div><style scoped>.dataframe td {color: red}</style><table border="1" class="dataframe">'
        "<thead><tr><th>sex</th><th>count</th></tr></thead><tbody><tr><td>F</td><td>102</td></tr>"
        '</tbody></table><a href="https://example.org/doc">docs</a></div>'
    )
    kept, findings = clean_bundle({"text/html": table, "text/plain": "   sex  count"})
    assert findings == []
    assert '<table border="1" class="dataframe">' in kept["text/html"]
    assert "<td>102</td>" in kept["text/html"]
    assert 'href="https://example.org/doc"' in kept["text/html"]
    assert "<style" not in kept["text/html"]  # cosmetic, and not a finding
    assert kept["text/plain"] == "   sex  count"


def test_javascript_and_pdf_outputs_are_dropped_other_unknown_types_silently() -> None:
    kept, findings = clean_bundle(
        {
            "application/javascript": "a.click()",
            "application/pdf": "JVBERi0=",
            "application/vnd.plotly.v1+json": {},
            "text/plain": "<Figure>",
        }
    )
    assert kept == {"text/plain": "<Figure>"}
    assert findings == ["an output of type application/javascript", "an output of type application/pdf"]
    kept, _ = clean_bundle({"application/javascript": "x"})
    assert "Enclave removed this output" in kept["text/plain"]


def test_markdown_and_svg_that_carry_links_are_replaced_by_a_sentence() -> None:
    kept, findings = clean_bundle({"text/markdown": f"[rows]({DATA})"})
    assert "text/markdown" not in kept
    assert findings == ["a data: link"]
    svg = f'<svg xmlns="http://www.w3.org/2000/svg"><a href="{DATA}"><text>x</text></a></svg>'
    kept, findings = clean_bundle({"image/svg+xml": svg})
    assert "image/svg+xml" not in kept
    assert "a link in an SVG image" in findings
    plain = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>'
    assert clean_bundle({"image/svg+xml": plain}) == ({"image/svg+xml": plain}, [])
    assert clean_bundle({"text/markdown": "**5** [docs](https://x.org)"})[1] == []


def test_kernel_messages_and_notebooks_are_cleaned_in_place() -> None:
    content = {"data": {"text/html": '<a download href="x">x</a>'}, "metadata": {}}
    assert clean_message("display_data", content) == ["a link with a download attribute"]
    assert "download" not in content["data"]["text/html"].split("<p>")[0]
    reply = {"status": "ok", "payload": [{"source": "page", "data": {"text/html": "<script>x</script>"}}]}
    assert clean_message("execute_reply", reply) == ["a <script> element"]
    stream = {"name": "stdout", "text": "<script>stays text</script>"}
    assert clean_message("stream", stream) == []
    assert stream["text"] == "<script>stays text</script>"
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": [f"[rows]({DATA})"]},
            {
                "cell_type": "code",
                "source": "",
                "outputs": [
                    {"output_type": "display_data", "data": {"application/javascript": ["x"]}},
                    {"output_type": "stream", "text": "hello"},
                ],
            },
        ]
    }
    findings = clean_notebook(notebook)
    assert findings == ["a data: link", "an output of type application/javascript"]
    assert notebook["cells"][0]["source"] == [f"[rows]({DATA})"]  # the researcher's text is not rewritten
    outputs = notebook["cells"][1]["outputs"]
    assert "application/javascript" not in outputs[0]["data"]
    assert outputs[1] == {"output_type": "stream", "text": "hello"}
