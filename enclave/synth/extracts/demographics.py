"""The demographics extract: the registered people, with names, postcode, region and deprivation."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.constants import _YEAR, MISSING_RATE
from enclave.synth.population import _dates, _nhs_series, _Population
from enclave.synth.sampling import _draw
from enclave.synth.tables import _tables


def _demographics(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    t = _tables()
    n = pop.n
    birth_year = 1970 + pop.dob / _YEAR
    cohort = np.where(birth_year < 1960, 0, np.where(birth_year < 1990, 1, 2))
    given_idx = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for (female, c), cdf in t.given_cdfs.items():
        sel = (pop.female == female) & (cohort == c)
        given_idx[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), cdf.size - 1)
    family_idx = _draw(rng, t.family_cdf, n)
    start = np.array(t.outward_start)[pop.region]
    count = np.array(t.outward_count)[pop.region]
    outward_idx = start + (rng.random(n) * count).astype(np.int64)
    sector = rng.integers(0, 10, n)
    unit_letters = "ABDEFGHJLNPQRSTUWXYZ"
    unit1 = rng.integers(0, len(unit_letters), n)
    unit2 = rng.integers(0, len(unit_letters), n)
    no_postcode = rng.random(n) < MISSING_RATE

    keep = np.flatnonzero(pop.registered)
    keep = keep[np.argsort(pop.order[keep], kind="stable")]
    letters = pl.Series(list(unit_letters), dtype=pl.String)
    given = t.given_names.gather(
        t.given_offset[pop.female[keep].astype(np.int64), cohort[keep]] + given_idx[keep]
    )
    postcode = pl.select(
        pl.concat_str(
            [
                t.outward.gather(outward_idx[keep]),
                pl.lit(" "),
                pl.Series(sector[keep]).cast(pl.String),
                letters.gather(unit1[keep]),
                letters.gather(unit2[keep]),
            ]
        )
    ).to_series()
    idx = np.flatnonzero(no_postcode[keep])
    if idx.size:
        postcode = postcode.scatter(idx, None)
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(pop.nhs[keep]),
            "given_name": given,
            "family_name": t.family.gather(family_idx[keep]),
            "date_of_birth": _dates(pop.dob[keep]),
            "sex": pl.Series(np.where(pop.female[keep], "F", "M"), dtype=pl.String),
            "postcode": postcode,
            "region": t.region_codes.gather(pop.region[keep]),
            "deprivation_quintile": pl.Series(pop.quintile[keep], dtype=pl.Int64),
        }
    )
