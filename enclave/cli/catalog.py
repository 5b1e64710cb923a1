"""The custodian's pipeline: ``enclave synth`` and ``enclave ingest``, and the ``catalog``,
``optout`` and ``keys`` commands.

``synth`` and ``ingest`` are plain functions here: :mod:`enclave.cli` registers them on the root app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from enclave.cli.common import (
    CliError,
    as_user,
    console_print,
    err,
    operator,
    out,
    run,
    services,
)
from enclave.config import load_settings

catalog_app = typer.Typer(help="Datasets, versions, linkage reports, DCAT-AP export.", no_args_is_help=True)
optout_app = typer.Typer(help="The national data opt-out list.", no_args_is_help=True)
keys_app = typer.Typer(help="The key store.", no_args_is_help=True)


def synth(
    persons: Annotated[int, typer.Option(help="number of persons")] = 50_000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same files")] = 1,
    out: Annotated[Path, typer.Option(help="directory to write the extracts into")] = Path("synthetic"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
) -> None:
    """Generate a synthetic population and its source extracts (with realistic faults)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from enclave.synth import generate

    def body() -> None:
        if fmt not in ("csv", "parquet"):
            raise CliError(f"unknown format {fmt!r}: use csv or parquet")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            summary = generate(
                persons, seed, out, fmt="parquet" if fmt == "parquet" else "csv", progress=report
            )
        for name, rows in summary.files.items():
            console_print(f"{name:<28} {rows:>12,} rows")
        console_print(f"{summary.persons:,} persons in {summary.seconds:.1f} s -> {out}")

    run(body)


def ingest(
    spec: Annotated[Path, typer.Argument(help="the source spec (YAML)")],
    file: Annotated[Path, typer.Argument(help="the extract: CSV (UTF-8, with a header) or Parquet")],
    report_file: Annotated[
        Path | None, typer.Option("--report", help="also write the ingest report as JSON")
    ] = None,
) -> None:
    """Validate an extract against its spec and publish it as the dataset's next version."""
    from rich.text import Text

    from enclave.ingest.spec import load_spec

    def body() -> None:
        loaded = load_spec(spec)
        # What a long ingest is doing, beside a spinner on stderr (nothing when stderr is not a terminal).
        with services() as s, err.status(Text(f"ingesting {file.name}")) as status:
            result = s.catalog.ingest(
                operator(), loaded, file, progress=lambda sentence: status.update(Text(sentence))
            )
        data = result.as_dict()
        console_print(
            f"{loaded.dataset} v{result.version}: {result.rows_read:,} rows read,"
            f" {result.rows_written:,} written"
            f" ({result.persons:,} persons), {result.rows_quarantined:,} quarantined,"
            f" {result.rows_opted_out:,} opted out, in {result.seconds:.1f} s"
        )
        for reason, count in result.reasons.items():
            console_print(f"  quarantined {count:>8,}  {reason}")
        for column, count in result.clamped.items():
            if count:
                console_print(f"  clamped     {count:>8,}  {column}")
        if result.quarantine_file:
            console_print(f"  quarantine file (custodian only): {result.quarantine_file}")
        if report_file is not None:
            report_file.write_text(json.dumps(data, indent=2))

    run(body)


@optout_app.command("load")
def optout_load(
    file: Annotated[Path, typer.Argument(help="CSV with a column nhs_number, or one number per line")],
) -> None:
    """Replace the national data opt-out list (stored as keyed pseudonyms only)."""

    def body() -> None:
        with services() as s:
            stored, rejected = s.catalog.load_opt_outs(operator(), file)
        console_print(
            f"opt-out list replaced: {stored:,} people"
            + (f", {rejected:,} malformed lines skipped" if rejected else "")
        )

    run(body)


@catalog_app.command("list")
def catalog_list() -> None:
    """List datasets with their custodian, current version and size."""

    def body() -> None:
        with services() as s:
            datasets = s.catalog.list_datasets(operator())
        table = Table("dataset", "title", "population", "custodian", "version", "rows", "persons", "bound")
        for d in datasets:
            table.add_row(
                d["name"],
                d["title"],
                d["population"],
                d["custodian"],
                str(d.get("current_version") or "-"),
                f"{d.get('rows', 0):,}",
                f"{d.get('persons', 0):,}",
                str(d["contribution_bound"]),
            )
        out.print(table)

    run(body)


@catalog_app.command("show")
def catalog_show(name: str) -> None:
    """Print one dataset's metadata and columns as JSON."""

    def body() -> None:
        with services() as s:
            console_print(json.dumps(s.catalog.get_dataset(operator(), name), indent=2, default=str))

    run(body)


@catalog_app.command("versions")
def catalog_versions(name: str) -> None:
    """Print a dataset's versions with their ingest reports as JSON."""

    def body() -> None:
        with services() as s:
            console_print(json.dumps(s.catalog.versions(operator(), name), indent=2, default=str))

    run(body)


@catalog_app.command("build-views")
def catalog_build_views() -> None:
    """Write the bounded view of every current version that lacks one (ingested before views existed),
    so DP queries on it are measured row-level instead of truncating persons per query."""

    def body() -> None:
        with services() as s:
            built = s.catalog.build_views(operator())
        console_print(
            f"bounded views written: {', '.join(built)}" if built else "every current version has its view"
        )

    run(body)


@catalog_app.command("linkage")
def catalog_linkage(
    population: Annotated[str | None, typer.Option(help="only this population")] = None,
) -> None:
    """For each pair of sources: persons in each, matched, only in one, match rates."""

    def body() -> None:
        with services() as s:
            result = s.catalog.linkage_report(operator(), population)
        if not result:
            console_print("no dataset with data that you are the custodian of")
        for pop, data in result.items():
            sizes = ", ".join(f"{name} {count:,}" for name, count in data["datasets"].items())
            console_print(f"population {pop}: persons per dataset: {sizes}")
            if not data["pairs"]:
                console_print("  only one dataset: no pair to link yet")
                continue
            table = Table(
                "a",
                "b",
                "persons a",
                "persons b",
                "matched",
                "only a",
                "only b",
                "rate a",
                "rate b",
            )
            for p in data["pairs"]:
                table.add_row(
                    p["a"],
                    p["b"],
                    f"{p['persons_a']:,}",
                    f"{p['persons_b']:,}",
                    f"{p['matched']:,}",
                    f"{p['only_in_a']:,}",
                    f"{p['only_in_b']:,}",
                    f"{p['match_rate_a']:.1%}",
                    f"{p['match_rate_b']:.1%}",
                )
            out.print(table)

    run(body)


@catalog_app.command("dcat")
def catalog_dcat(
    base_url: Annotated[str | None, typer.Option(help="public URL of the API")] = None,
) -> None:
    """Print the catalog as DCAT-AP JSON-LD, for national data portals."""

    def body() -> None:
        settings = load_settings()
        with services() as s:
            console_print(json.dumps(s.catalog.dcat(base_url or settings.api_url), indent=2))

    run(body)


@catalog_app.command("policy")
def catalog_policy(
    name: str,
    max_epsilon: Annotated[str, typer.Option(help="the most epsilon one request may ask of this dataset")],
    username: Annotated[str | None, typer.Option("--as", help="act as this user")] = None,
) -> None:
    """Set a dataset's budget policy (its custodian)."""
    from decimal import Decimal, InvalidOperation

    def body() -> None:
        try:
            value = Decimal(max_epsilon)
        except InvalidOperation:
            raise CliError(f"cannot read {max_epsilon!r} as a number") from None
        with services() as s:
            who = as_user(s, username) if username else operator()
            s.access.set_dataset_policy(who, name, value)
        console_print(f"{name}: requests may ask for at most epsilon {value}")

    run(body)


@keys_app.command("init")
def keys_init() -> None:
    """Create the master key if there is none (required once before production start)."""

    def body() -> None:
        from enclave.keys import KeyStore

        settings = load_settings()
        settings.ensure_home()
        store = KeyStore(settings.master_key_file, create=True)
        created = store.init()
        console_print(
            f"{'created' if created else 'kept the existing'} master key {settings.master_key_file}"
            f" (fingerprint {store.fingerprint()})"
        )

    run(body)
