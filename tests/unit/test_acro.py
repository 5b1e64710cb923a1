"""Reading an ACRO results folder and mapping ACRO's checks onto the airlock's.

The folders are built by hand in the shape ``acro.finalise(path, "json")`` writes them, copied from
real sessions of ACRO 1.0.2 and 0.4.8 (``Records.finalise_json``, ``Record.serialize_output``,
``Records.write_checksums``): the same keys, check names, statuses, cell positions and CSV layout.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from enclave.airlock.acro import (
    ImportedCheckRecord,
    load_acro,
    parse_results,
    with_imported_checks,
)
from enclave.airlock.checks import run_checks
from enclave.airlock.files import intake
from enclave.domain.errors import InternalError, InvalidInput, PayloadTooLarge
from enclave.domain.outputs.acro import AcroImport
from enclave.domain.outputs.checks import Rounding, Status, TableSpec
from enclave.domain.outputs.files import Limits

# --- realistic ACRO folders -----------------------------------------------------------------------

# acro.crosstab(df.year, df.grant_type): DataFrame.to_csv, index included; X is a rare grant type
CROSSTAB = b"year,G,N,R,X\n2010,60,32,33,1\n2011,70,40,25,1\n2012,59,40,39,0\n"
# the same with acro.suppress = True: the flagged cells are NaN, written empty
SUPPRESSED = b"year,G,N,R,X\n2010,60,32,33,\n2011,70,40,25,\n2012,59,40,39,\n"
NOTES = b"Notes on the analysis: the grant types follow the funder's classification.\n"
REGRESSION = (
    b",coef,std err,t,P>|t|,[0.025,0.975]\n"
    b"const,-273700.0,165000.0,-1.661,0.098,-598000.0,50300.0\n"
    b"year,137.0989,81.949,1.673,0.095,-24.01,298.207\n"
)
FAIR_FREQUENCIES = {
    "context": "https://w3id.org/statbarnsdc#",
    "statbarn": "Frequencies",
    "risks": ["ClassDisclosure", "Differencing", "LowCount"],
    "checks_needed": [
        "RequiredZeroCheck",
        "PresenceOfZeroCheck",
        "PresenceOfLinkedTableCheck",
        "MinimumThresholdCheck",
    ],
    "common_mitigations": ["Noise", "Suppression"],
    "check_status": {
        "RequiredZeroCheck": "pass",
        "PresenceOfZeroCheck": "fail",
        "PresenceOfLinkedTableCheck": "pass",
        "MinimumThresholdCheck": "fail",
    },
    "dependent": "unknown",
    "independent": ["year", "grant_type"],
}
SDC_FREQUENCIES = {
    "summary": {
        "RequiredZeroCheck": 0,
        "PresenceOfZeroCheck": 1,
        "PresenceOfLinkedTableCheck": 0,
        "MinimumThresholdCheck": 3,
    },
    "cells": {
        "RequiredZeroCheck": [],
        "PresenceOfZeroCheck": [[2, 3]],
        "PresenceOfLinkedTableCheck": [],
        "MinimumThresholdCheck": [[0, 3], [1, 3], [2, 3]],
    },
}
SUMMARY_FREQUENCIES = (
    "FrequencyTable : \n PresenceOfZeroCheck: fail - 1 cells may need suppressing.\n"
    " PresenceOfLinkedTableCheck: A manual review against other outputs for differencing is recommended."
    " Variables defining table are:  ['year', 'grant_type'].\n"
    " MinimumThresholdCheck: fail - 3 cells may need suppressing.\n"
)
CHECKER_ONLY = "DO NOT RELEASE - SUMMARY FOR OUTPUT CHECKER USE ONLY"


def _custom(uid: str, name: str, comments: list[str], version: str = "1.0.2") -> dict[str, Any]:
    out: dict[str, Any] = {
        "uid": uid,
        "status": "review",
        "type": "custom",
        "properties": {},
        "files": [{"name": name, "sdc": {}}],
        "outcome": {},
        "command": "custom",
        "summary": "review",
        "timestamp": "2026-11-23T12:24:40.812345",
        "comments": comments,
        "exception": "",
    }
    if version.startswith("1."):
        out["fair"] = {}
    return out


def results_v1() -> dict[str, Any]:
    """ACRO 1.0.2: a failing crosstab (with a comment and an exception request), a custom file, the
    same crosstab suppressed, and the session summary ACRO adds "for the output checker only"."""
    table = {
        "uid": "output_0",
        "status": "fail",
        "type": "table",
        "properties": {"method": "crosstab", "mitigation": "none"},
        "files": [{"name": "output_0_0.csv", "sdc": copy.deepcopy(SDC_FREQUENCIES)}],
        "outcome": {
            "G": {"2010": "ok", "2011": "ok", "2012": "ok"},
            "X": {
                "2010": "MinimumThresholdCheck; ",
                "2011": "MinimumThresholdCheck; ",
                "2012": "PresenceOfZeroCheck; MinimumThresholdCheck; ",
            },
        },
        "command": "print(acro.crosstab(df.year, df.grant_type))",
        "summary": SUMMARY_FREQUENCIES,
        "timestamp": "2026-11-23T12:24:40.771642",
        "comments": ["Table 1 of the paper"],
        "exception": "X is a structural category, published elsewhere",
        "fair": copy.deepcopy(FAIR_FREQUENCIES),
    }
    suppressed = copy.deepcopy(table)
    suppressed.update(
        uid="output_2",
        status="review",
        properties={"method": "crosstab", "mitigation": "suppress"},
        command="acro.crosstab(df.year, df.grant_type)",
        comments=[],
        exception="Suppression automatically applied where needed",
    )
    suppressed["files"][0]["name"] = "output_2_0.csv"
    return {
        "version": "1.0.2",
        "tool": {
            "@type": "SoftwareApplication",
            "name": "ACRO",
            "url": "https://github.com/AI-SDC/ACRO",
            "version": "1.0.2",
        },
        "results": {
            "output_0": table,
            "output_1": _custom("output_1", "notes.txt", ["our notes"]),
            "output_2": suppressed,
            "2ndary_risk_summary_json-DONT_RELEASE": _custom(
                "2ndary_risk_summary_json-DONT_RELEASE", "session_summary.json", [CHECKER_ONLY]
            ),
        },
    }


FILES_V1 = {
    "output_0_0.csv": CROSSTAB,
    "notes.txt": NOTES,
    "output_2_0.csv": SUPPRESSED,
    "session_summary.json": b'{"version": "1.0.2", "total_outputs": 4}',
}


def _sdc_04(threshold: int, cells: list[list[int]], *, suppressed: bool = False) -> dict[str, Any]:
    names = ("negative", "missing", "threshold", "p-ratio", "nk-rule", "all-values-are-same")
    return {
        "summary": {"suppressed": suppressed, **{n: threshold if n == "threshold" else 0 for n in names}},
        "cells": {n: cells if n == "threshold" else [] for n in names},
    }


def results_v04() -> dict[str, Any]:
    """ACRO 0.4.8: a failing crosstab, the same suppressed (still "fail" in 0.4), a regression that
    passed and one that failed on its degrees of freedom (regressions carry no sdc in ACRO)."""

    def table(uid: str, sdc: dict[str, Any], summary: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "status": "fail",
            "type": "table",
            "properties": {"method": "crosstab"},
            "files": [{"name": f"{uid}_0.csv", "sdc": sdc}],
            "outcome": {"X": {"2010": "threshold; ", "2011": "threshold; ", "2012": "threshold; "}},
            "command": "acro.crosstab(df.year, df.grant_type)",
            "summary": summary,
            "timestamp": "2026-11-23T12:31:02.001122",
            "comments": [],
            "exception": "needed for the paper",
        }

    def regression(uid: str, status: str, summary: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "status": status,
            "type": "regression",
            "properties": {"method": "ols", "dof": 397.0 if status == "pass" else 5.0},
            "files": [{"name": f"{uid}_0.csv", "sdc": {}}],
            "outcome": {},
            "command": "acro.ols(y, x)",
            "summary": summary,
            "timestamp": "2026-11-23T12:31:02.101122",
            "comments": [],
            "exception": "" if status == "pass" else "a small pilot model",
        }

    cells = [[0, 3], [1, 3], [2, 3]]
    return {
        "version": "0.4.8",
        "results": {
            "output_0": table(
                "output_0", _sdc_04(3, cells), "fail; threshold: 3 cells may need suppressing; "
            ),
            "output_1": table(
                "output_1", _sdc_04(3, cells, suppressed=True), "fail; threshold: 3 cells suppressed; "
            ),
            "output_2": regression("output_2", "pass", "pass; dof=397.0 >= 10"),
            "output_3": regression("output_3", "fail", "fail; dof=5.0 < 10"),
        },
    }


FILES_V04 = {
    "output_0_0.csv": CROSSTAB,
    "output_1_0.csv": SUPPRESSED,
    "output_2_0.csv": REGRESSION,
    "output_3_0.csv": REGRESSION,
}


def write_folder(
    root: Path, results: dict[str, Any], files: dict[str, bytes], *, checksums: bool = True
) -> Path:
    """A folder as acro.finalise writes it: results.json, the files, config.json, checksums/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results, indent=4), encoding="utf-8")
    for name, content in files.items():
        (root / name).write_bytes(content)
    (root / "config.json").write_text(json.dumps({"safe_threshold": 10, "safe_nk_k": 0.9}, indent=4))
    if checksums:
        (root / "checksums").mkdir(exist_ok=True)
        for path in root.iterdir():
            if path.is_file() and path.name != "config.json":
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                (root / "checksums" / f"{path.name}.txt").write_text(digest)
    return root


def folder_uploads(root: Path) -> list[tuple[str, bytes]]:
    """Every file of a folder as (path in the folder, content): what a browser or client uploads."""
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def by_rule(results: tuple[Any, ...]) -> dict[str, str]:
    return {r.rule: r.status.value for r in results}


# --- mapping --------------------------------------------------------------------------------------


def test_acro_1x_checks_map_onto_acro_rules_with_acro_status_first(tmp_path: Path) -> None:
    """Each ACRO 1.x check becomes a rule acro.<check> with the status ACRO recorded for it
    (fail -> fail, review -> warn); acro.status carries ACRO's verdict and only warns when a named
    rule already carries the failure, so one failure needs one override."""
    found = load_acro(write_folder(tmp_path / "acro", results_v1(), FILES_V1))
    assert found.version == "1.0.2"
    files = {f.name: f for f in found.files}
    assert list(files) == ["output_0_0.csv", "notes.txt", "output_2_0.csv"]

    table = files["output_0_0.csv"]
    assert table.results[0].rule == "acro.status"
    assert by_rule(table.results) == {
        "acro.status": "warn",
        "acro.required_zero": "pass",
        "acro.zeros": "fail",
        "acro.linked_tables": "pass",
        "acro.threshold": "fail",
    }
    threshold = next(r for r in table.results if r.rule == "acro.threshold")
    assert "flagged 3 cell(s)" in threshold.message
    assert "row 0 column 3" in threshold.message
    assert "acro.threshold, acro.zeros" in table.results[0].message
    assert "exception: X is a structural category" in table.results[0].message
    assert table.verdict["status"] == "fail"
    assert table.verdict["checksum"] == "verified"
    assert table.content == CROSSTAB
    assert table.rounding is None
    assert "print(acro.crosstab(df.year, df.grant_type))" in table.description
    assert "Table 1 of the paper" in table.description
    assert "exception requested: X is a structural category" in table.description

    custom = files["notes.txt"]
    assert by_rule(custom.results) == {"acro.status": "warn"}
    assert "did not check this custom output" in custom.results[0].message

    suppressed = files["output_2_0.csv"]
    assert by_rule(suppressed.results)["acro.threshold"] == "warn"
    assert "ACRO suppressed the flagged cells" in next(
        r.message for r in suppressed.results if r.rule == "acro.threshold"
    )
    assert found.controls() == "Applied by ACRO 1.0.2: output_2: suppressed the flagged cells."
    assert found.skipped == (
        "2ndary_risk_summary_json-DONT_RELEASE: ACRO's session summary, marked for the output checker only"
        " (DO NOT RELEASE)",
    )


def test_acro_04_counts_decide_and_a_regression_failure_is_acro_status(tmp_path: Path) -> None:
    """ACRO 0.4 records no per-check status: a flagged cell fails threshold/p-ratio/nk-rule; a
    suppressed table (still "fail" in 0.4) only warns; a regression's failure, with no sdc, is a
    failed acro.status."""
    found = load_acro(write_folder(tmp_path / "acro", results_v04(), FILES_V04))
    files = {f.name: by_rule(f.results) for f in found.files}
    assert files["output_0_0.csv"] == {
        "acro.status": "warn",
        "acro.negative": "pass",
        "acro.missing": "pass",
        "acro.threshold": "fail",
        "acro.p_ratio": "pass",
        "acro.nk_rule": "pass",
        "acro.all_values_are_same": "pass",
    }
    assert files["output_1_0.csv"]["acro.threshold"] == "warn"
    assert files["output_1_0.csv"]["acro.status"] == "warn"
    assert files["output_2_0.csv"] == {"acro.status": "pass"}
    assert files["output_3_0.csv"] == {"acro.status": "fail"}
    regression = next(f for f in found.files if f.name == "output_3_0.csv")
    assert "dof=5.0 < 10" in regression.results[0].message
    assert found.skipped == ()


def test_review_statuses_negatives_and_degrees_of_freedom(tmp_path: Path) -> None:
    """negative/missing flags warn (ACRO asks for a review); a 1.x MinimumDoFCheck's summary is a sum
    of degrees of freedom, not a count of cells, so it is never reported as cells; an unknown future
    check becomes a warning under its own acro.* name."""
    results = results_v04()
    results["results"]["output_0"]["files"][0]["sdc"]["summary"]["negative"] = 2
    v1 = results_v1()
    table = v1["results"]["output_0"]
    table["files"][0]["sdc"]["summary"].update(MinimumDoFCheck=396, FutureRiskCheck=1)
    table["files"][0]["sdc"]["cells"].update(MinimumDoFCheck=[[0, 0], [1, 0]], FutureRiskCheck=[[1, 1]])
    table["fair"]["check_status"] = {"MinimumDoFCheck": "fail"}  # ACRO keeps the last analysis's only
    old = load_acro(write_folder(tmp_path / "old", results, FILES_V04)).files[0]
    assert by_rule(old.results)["acro.negative"] == "warn"
    new = load_acro(write_folder(tmp_path / "new", v1, FILES_V1)).files[0]
    rules = by_rule(new.results)
    assert rules["acro.dof"] == "fail"
    assert rules["acro.threshold"] == "fail"  # from its count, as check_status left it out
    assert rules["acro.future_risk_check"] == "warn"
    dof = next(r for r in new.results if r.rule == "acro.dof")
    assert "cell" not in dof.message.split(":")[0]
    assert "396" not in dof.message


def test_rounding_applied_by_acro_becomes_the_files_declared_rounding(tmp_path: Path) -> None:
    """A table ACRO rounded (1.x mitigation "round", round_base 5) is declared rounded to a multiple
    of 5, so Enclave's provenance check accepts the rounded numbers."""
    results = results_v1()
    table = results["results"]["output_0"]
    table.update(
        status="review",
        properties={"method": "crosstab", "mitigation": "round", "round_base": 5},
        exception="Rounding automatically applied to nearest 5",
    )
    for name, status in table["fair"]["check_status"].items():
        table["fair"]["check_status"][name] = "pass" if status == "fail" else status
    files = dict(FILES_V1, **{"output_0_0.csv": b"year,G,N,R\n2010,55.0,55.0,55.0\n2011,40.0,50.0,45.0\n"})
    found = load_acro(write_folder(tmp_path / "acro", results, files))
    table_file = found.files[0]
    assert table_file.rounding == Rounding(base=5)
    assert by_rule(table_file.results)["acro.status"] == "warn"
    assert "output_0: rounded the table to a multiple of 5" in found.controls()


def test_uploaded_files_read_like_the_folder_and_nothing_else_is_accepted(tmp_path: Path) -> None:
    """The folder's files as uploaded (names are paths in the folder, checksums/ included, or all
    under the folder's own name as a browser sends them) give the same import; config.json and
    checksums are ignored; anything results.json does not list is refused."""
    root = write_folder(tmp_path / "acro_outputs", results_v1(), FILES_V1)
    from_folder = load_acro(root)
    uploads = folder_uploads(root)
    assert load_acro(uploads) == from_folder
    prefixed = [(f"acro_outputs/{n}", c) for n, c in uploads]
    assert load_acro(prefixed) == from_folder
    streamed = [(n, io.BytesIO(c)) for n, c in uploads]
    assert load_acro(streamed) == from_folder
    with pytest.raises(InvalidInput, match=r"'extra.csv' was uploaded but results.json does not list it"):
        load_acro([*uploads, ("extra.csv", b"a,b\n1,2\n")])
    with pytest.raises(InvalidInput, match="uploaded twice"):
        load_acro([*uploads, ("notes.txt", NOTES)])
    with pytest.raises(InvalidInput, match="at most 20"):
        load_acro([(f"f{i}.csv", b"a\n") for i in range(21)], limits=Limits(max_files=5))


def test_an_imported_file_passes_normal_intake_and_checks(tmp_path: Path) -> None:
    """The content is what ACRO wrote; intake and Enclave's own checks run on it as on any file.
    A crosstab is a frequency table: every cell but the row labels is declared a count, so Enclave's
    small-count rule reads X's small counts, as ACRO's threshold check does, rather than guessing
    from the names (which would take the grant-type column "N" for the counts and miss X)."""
    found = load_acro(write_folder(tmp_path / "acro", results_v1(), FILES_V1))
    table = found.files[0]
    accepted = intake(table.name, table.content)
    assert accepted.content == CROSSTAB
    assert table.count_columns == ("G", "N", "R", "X")
    guessed = run_checks(accepted)
    assert "count columns: N" in guessed.result("small_counts").message
    record = run_checks(accepted, spec=TableSpec(count_columns=table.count_columns))
    assert record.result("provenance").status is Status.FAIL  # not numbers this project released
    assert record.result("small_counts").status is Status.FAIL
    assert "X" in record.result("small_counts").message
    assert by_rule(table.results)["acro.threshold"] == "fail"
    assert [f.count_columns for f in found.files[1:]] == [None, ("G", "N", "R", "X")]


# --- at submit ------------------------------------------------------------------------------------


def test_imported_verdict_joins_the_check_record_and_its_failures_block(tmp_path: Path) -> None:
    """with_imported_checks adds ACRO's results after Enclave's own and keeps ACRO's verdict under
    "imported"; ACRO's failed rules are failed rules of the record (so a reviewer must override
    them); a file not imported from ACRO is unchanged."""
    found = load_acro(write_folder(tmp_path / "acro", results_v1(), FILES_V1))
    item = found.files[0]
    ours = run_checks(intake(item.name, item.content))
    spec = {"rounding": Rounding().to_dict(), "acro": json.loads(json.dumps(item.verdict))}
    merged = with_imported_checks(ours, spec)
    assert isinstance(merged, ImportedCheckRecord)
    assert merged.results[: len(ours.results)] == ours.results
    assert merged.failed_rules == ours.failed_rules | {"acro.threshold", "acro.zeros"}
    assert merged.status is Status.FAIL
    stored = json.loads(merged.to_json())
    assert stored["imported"]["tool"] == "ACRO"
    assert stored["imported"]["status"] == "fail"
    assert "results" not in stored["imported"]
    assert [r["rule"] for r in stored["results"]][-5:] == [
        "acro.status",
        "acro.required_zero",
        "acro.zeros",
        "acro.linked_tables",
        "acro.threshold",
    ]
    assert with_imported_checks(ours, {"rounding": {}}) is ours
    with pytest.raises(InternalError, match="malformed"):
        with_imported_checks(ours, {"acro": {"results": [{"rule": "small_counts", "status": "pass"}]}})


# --- refusals -------------------------------------------------------------------------------------


def _broken(change: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    results, files = results_v1(), dict(FILES_V1)
    table = results["results"]["output_0"]
    if change == "status":
        table["status"] = "maybe"
    elif change == "missing_field":
        del table["files"]
    elif change == "extra_field":
        table["verdict"] = "fine"
    elif change == "uid":
        table["uid"] = "output_9"
    elif change == "version":
        results["version"] = "2.0.0"
    elif change == "count":
        table["files"][0]["sdc"]["summary"]["MinimumThresholdCheck"] = -1
    elif change == "bool_count":
        table["files"][0]["sdc"]["summary"]["MinimumThresholdCheck"] = True
    elif change == "cells":
        table["files"][0]["sdc"]["cells"]["MinimumThresholdCheck"] = [[0]]
    elif change == "traversal":
        table["files"][0]["name"] = "../../etc/evil.csv"
    elif change == "absolute":
        table["files"][0]["name"] = "/etc/passwd.csv"
    elif change == "backslash":
        table["files"][0]["name"] = "..\\evil.csv"
    elif change == "archive":
        table["files"][0]["name"] = "outputs.zip"
    elif change == "pdf":
        table["files"][0]["name"] = "report.pdf"
    elif change == "file_missing":
        del files["output_0_0.csv"]
    elif change == "twice":
        results["results"]["output_1"]["files"][0]["name"] = "output_0_0.csv"
    elif change == "none":
        results["results"] = {k: v for k, v in results["results"].items() if k.endswith("DONT_RELEASE")}
    elif change == "empty":
        results["results"] = {}
    return results, files


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ("status", r"results.output_0.status: Input should be 'pass', 'review' or 'fail'"),
        ("missing_field", r"results.output_0.files: Field required"),
        ("extra_field", r"results.output_0.verdict: Extra inputs are not permitted"),
        ("uid", r"output 'output_0' says its uid is 'output_9'"),
        ("version", r"ACRO 2.0.0 cannot be read; Enclave reads those of ACRO 0.4 and 1.x"),
        ("count", r"summary.MinimumThresholdCheck must be a number of cells"),
        ("bool_count", r"summary.MinimumThresholdCheck must be a number of cells"),
        ("cells", r"cells.MinimumThresholdCheck"),
        ("traversal", r"ACRO output 'output_0' lists a file that cannot be imported: .* uses \. or \.\."),
        ("absolute", r"ACRO output 'output_0' lists a file that cannot be imported: .* is an absolute path"),
        ("backslash", r"contains a backslash"),
        ("archive", r"is an archive; archives are not accepted"),
        ("pdf", r"\.pdf files are not accepted"),
        ("file_missing", r"lists 'output_0_0.csv', which is not in the ACRO folder"),
        ("twice", r"lists 'output_0_0.csv', which output 'output_0' lists too"),
        ("none", r"lists no output file to import \(2ndary_risk_summary_json-DONT_RELEASE: ACRO's session"),
        ("empty", r"lists no output file to import"),
    ],
)
def test_a_malformed_results_file_is_refused_with_a_sentence(
    tmp_path: Path, change: str, phrase: str
) -> None:
    """Every malformed results.json or listing is refused with InvalidInput naming what is wrong."""
    results, files = _broken(change)
    root = write_folder(tmp_path / "acro", results, files)
    with pytest.raises(InvalidInput, match=phrase):
        load_acro(root)
    with pytest.raises(InvalidInput, match=phrase):
        load_acro(folder_uploads(root))


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"{not json", r"results.json is not valid JSON \(line 1, column 2"),
        (b"[1, 2]", r"results.json must be a JSON object with version and results"),
        (b"\xff\xfe{}", r"results.json is not UTF-8 text"),
        (b"{}", r"results.json is not an ACRO results file \(ACRO 0.4 and 1.x\): version: Field required"),
        (b"[" * 100_000, r"results.json is (nested too deeply|not valid JSON)"),
    ],
)
def test_a_results_file_that_is_not_json_or_not_acros_is_refused(content: bytes, phrase: str) -> None:
    with pytest.raises(InvalidInput, match=phrase):
        parse_results(content)


def test_a_folder_without_results_json_or_not_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"no results.json: import the folder acro.finalise"):
        load_acro(tmp_path / "empty")
    with pytest.raises(InvalidInput, match="does not exist"):
        load_acro(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InvalidInput, match="is not a folder"):
        load_acro(tmp_path / "file.txt")
    with pytest.raises(InvalidInput, match=r"no results.json"):
        load_acro([("output_0_0.csv", CROSSTAB)])


def test_links_out_of_the_folder_are_refused_and_links_within_it_are_read(tmp_path: Path) -> None:
    """A listed file (or results.json) that is a symbolic link to a place outside the ACRO folder is
    refused; a link to another file of the folder is read; a directory is not a file."""
    secret = tmp_path / "secret.csv"
    secret.write_bytes(CROSSTAB)
    root = write_folder(tmp_path / "acro", results_v1(), FILES_V1, checksums=False)
    (root / "output_0_0.csv").unlink()
    (root / "output_0_0.csv").symlink_to(secret)
    with pytest.raises(InvalidInput, match=r"output_0_0.csv in the ACRO folder is a link to a file outside"):
        load_acro(root)
    (root / "output_0_0.csv").unlink()
    (root / "kept.csv").write_bytes(CROSSTAB)
    (root / "output_0_0.csv").symlink_to("kept.csv")
    assert load_acro(root).files[0].content == CROSSTAB

    outside = write_folder(tmp_path / "elsewhere", results_v1(), FILES_V1)
    (root / "results.json").unlink()
    (root / "results.json").symlink_to(outside / "results.json")
    with pytest.raises(InvalidInput, match=r"results.json in the ACRO folder is a link to a file outside"):
        load_acro(root)
    (root / "results.json").unlink()
    (root / "results.json").write_text(json.dumps(results_v1()))
    (root / "notes.txt").unlink()
    (root / "notes.txt").mkdir()
    with pytest.raises(InvalidInput, match=r"notes.txt in the ACRO folder is not a regular file"):
        load_acro(root)


def test_a_file_changed_after_acro_checked_it_is_refused(tmp_path: Path) -> None:
    """ACRO's checksums/<file>.txt must match the file: a table edited after acro.finalise is not
    the table ACRO's verdict is about. No checksum folder: nothing to verify."""
    root = write_folder(tmp_path / "acro", results_v1(), FILES_V1)
    (root / "output_0_0.csv").write_bytes(CROSSTAB.replace(b",1\n", b",10\n"))
    with pytest.raises(InvalidInput, match=r"output_0_0.csv does not match its checksum in checksums/"):
        load_acro(root)
    (root / "checksums" / "output_0_0.csv.txt").write_text("not a checksum")
    with pytest.raises(InvalidInput, match=r"checksums/output_0_0.csv.txt is not a SHA-256 checksum"):
        load_acro(root)
    plain = write_folder(tmp_path / "plain", results_v1(), FILES_V1, checksums=False)
    assert {f.verdict["checksum"] for f in load_acro(plain).files} == {"none"}


def test_size_and_count_limits_apply_before_anything_is_imported(tmp_path: Path) -> None:
    """A file over the per-file limit is 413; so is a folder over the request limit; more listed
    files than a request may hold is refused."""
    root = write_folder(tmp_path / "acro", results_v1(), FILES_V1)
    with pytest.raises(PayloadTooLarge, match=r"output_0_0.csv is over the size limit"):
        load_acro(root, limits=Limits(max_file_bytes=50))
    with pytest.raises(PayloadTooLarge, match="add up to more than 100 bytes"):
        load_acro(root, limits=Limits(max_request_bytes=100))
    with pytest.raises(InvalidInput, match="lists 3 output files; an output request holds at most 2"):
        load_acro(root, limits=Limits(max_files=2))


def test_the_import_is_a_value() -> None:
    """AcroImport without mitigations declares no controls."""
    assert AcroImport("1.0.2", (), ()).controls() == ""
