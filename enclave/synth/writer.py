"""A run: ``generate`` checks its arguments, draws each chunk of ``CHUNK_PERSONS`` people and writes
the extracts (``FILE_NAMES``) through ``_Sink``; ``SynthSummary`` is what it returns."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from enclave.domain.errors import InvalidInput
from enclave.synth.constants import UNREGISTERED_RATE, IntArr
from enclave.synth.extracts.admissions import _admissions
from enclave.synth.extracts.deaths import _deaths, _deaths_cause
from enclave.synth.extracts.demographics import _demographics
from enclave.synth.extracts.lab_results import _lab_results
from enclave.synth.extracts.opt_outs import _opt_outs
from enclave.synth.extracts.prescriptions import _prescriptions
from enclave.synth.nhs import _nhs_numbers, _nhs_permutation
from enclave.synth.population import _Counters, _Population

MAX_PERSONS = 50_000_000
CHUNK_PERSONS = 250_000
FILE_NAMES = ("demographics", "admissions", "prescriptions", "lab_results", "deaths", "opt_outs")


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote: the number of registered persons and the rows per file."""

    persons: int
    files: dict[str, int]
    seconds: float


def _chunk(
    rng: np.random.Generator, n_registered: int, nhs: IntArr, counters: _Counters
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Each source's rows for one chunk of people, one at a time (so only one frame is in memory)."""
    pop = _Population(rng, n_registered, nhs)
    yield "demographics", _demographics(rng, pop)
    cause = _deaths_cause(rng, pop)
    yield "admissions", _admissions(rng, pop, cause, counters)
    yield "prescriptions", _prescriptions(rng, pop, counters)
    yield "lab_results", _lab_results(rng, pop)
    yield "deaths", _deaths(rng, pop, cause)
    yield "opt_outs", _opt_outs(rng, pop)


class _Sink:
    """Appends each chunk's frames to one file per source: CSV directly, Parquet via part files."""

    def __init__(self, out: Path, fmt: Literal["csv", "parquet"], work: Path) -> None:
        self.out, self.fmt, self.work = out, fmt, work
        self.rows = dict.fromkeys(FILE_NAMES, 0)
        self.parts: dict[str, list[Path]] = {name: [] for name in FILE_NAMES}

    def partial(self, name: str) -> Path:
        return self.work / f"{name}.{self.fmt}"

    def write(self, name: str, frame: pl.DataFrame) -> None:
        self.rows[name] += frame.height
        if self.fmt == "csv":
            first = not self.partial(name).exists()
            with self.partial(name).open("ab") as handle:
                frame.write_csv(handle, include_header=first, float_precision=1, date_format="%Y-%m-%d")
        else:
            part = self.work / f"{name}.part{len(self.parts[name]):05d}.parquet"
            frame.write_parquet(part, compression="zstd", statistics=True)
            self.parts[name].append(part)

    def finish(self, progress: Callable[[str, int, int], None] | None) -> dict[str, int]:
        files: dict[str, int] = {}
        for k, name in enumerate(FILE_NAMES):
            if self.fmt == "parquet":
                parts = self.parts[name]
                if len(parts) == 1:
                    parts[0].replace(self.partial(name))
                else:
                    pl.scan_parquet(parts).sink_parquet(
                        self.partial(name), compression="zstd", statistics=True, row_group_size=250_000
                    )
            final = self.out / f"{name}.{self.fmt}"
            os.replace(self.partial(name), final)
            files[final.name] = self.rows[name]
            if progress is not None:
                progress("write", k + 1, len(FILE_NAMES))
        return files


def _check_arguments(persons: object, seed: object, out: object, fmt: object) -> Path:
    if isinstance(persons, bool) or not isinstance(persons, int):
        raise InvalidInput(f"the number of persons must be a whole number, not {persons!r}")
    if persons < 1 or persons > MAX_PERSONS:
        raise InvalidInput(f"the number of persons must be between 1 and {MAX_PERSONS:,}; got {persons:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"the seed must be a whole number of 0 or more; got {seed!r}")
    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"unknown output format {fmt!r}: use csv or parquet")
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInput(f"the output directory must be a path, not {out!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} exists and is not a directory: choose a directory for the extracts")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the output directory {path}: {exc.strerror or exc}") from None
    return path


def generate(
    persons: int,
    seed: int,
    out: Path,
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthSummary:
    """Write the six synthetic extracts for ``persons`` registered people into ``out``.

    Files are ``<source>.csv`` or ``<source>.parquet`` for each name in ``FILE_NAMES``. They are built
    in a work directory inside ``out`` and moved into place (replacing files of the same name) only
    after every chunk has been generated; the work directory is always removed. ``progress(stage,
    done, total)`` is called with stage ``"generate"`` (persons done, out of ``persons``) before and
    after each chunk, then ``"write"`` (files finished, out of 6). The same ``(persons, seed)`` gives
    byte-identical files; bad arguments raise ``InvalidInput``.
    """
    path = _check_arguments(persons, seed, out, fmt)
    started = time.perf_counter()
    chunks = math.ceil(persons / CHUNK_PERSONS)
    children = np.random.SeedSequence(seed).spawn(chunks + 1)
    a, b = _nhs_permutation(np.random.default_rng(children[0]))
    counters = _Counters()
    done = 0
    unregistered_done = 0
    work = Path(tempfile.mkdtemp(prefix=".synth-", dir=path))
    try:
        sink = _Sink(path, fmt, work)
        if progress is not None:
            progress("generate", 0, persons)
        for c in range(chunks):
            size = min(CHUNK_PERSONS, persons - done)
            extra = round(size * UNREGISTERED_RATE / (1 - UNREGISTERED_RATE))
            index = np.concatenate(
                [
                    np.arange(done, done + size, dtype=np.int64),
                    persons + unregistered_done + np.arange(extra, dtype=np.int64),
                ]
            )
            rng = np.random.default_rng(children[c + 1])
            for name, frame in _chunk(rng, size, _nhs_numbers(index, a, b), counters):
                sink.write(name, frame)
            done += size
            unregistered_done += extra
            if progress is not None:
                progress("generate", done, persons)
        files = sink.finish(progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SynthSummary(persons=persons, files=files, seconds=time.perf_counter() - started)
