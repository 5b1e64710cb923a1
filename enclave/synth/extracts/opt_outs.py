"""The opt_outs extract: the people who opted out, registered or not."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.constants import OPT_OUT_RATE
from enclave.synth.population import _nhs_series, _Population


def _opt_outs(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    chosen = np.flatnonzero(rng.random(pop.n) < OPT_OUT_RATE)
    chosen = chosen[np.argsort(pop.order[chosen], kind="stable")]
    return pl.DataFrame({"nhs_number": _nhs_series(pop.nhs[chosen])})
