"""The dates of the run, the fault rates, day numbers and the array types shared by the package."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

REFERENCE_DATE = date(2025, 12, 31)
EVENTS_START = date(2019, 1, 1)

# Fault rates (see the docstring of enclave.synth).
INVALID_NHS_RATE = 0.005
DUPLICATE_RATE = 0.003
MISSING_RATE = 0.01
UNREGISTERED_RATE = 0.03
OPT_OUT_RATE = 0.025
LATE_LINKAGE_RATE = 0.015

IntArr = npt.NDArray[np.int64]
FloatArr = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]
_Curve = tuple[tuple[float, ...], tuple[float, ...]]

_EPOCH = date(1970, 1, 1)
_REF = (REFERENCE_DATE - _EPOCH).days
_START = (EVENTS_START - _EPOCH).days
_COVID_START = (date(2020, 3, 1) - _EPOCH).days
_YEAR = 365.25
