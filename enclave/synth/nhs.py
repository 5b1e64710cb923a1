"""NHS numbers: check digits, the permutation that gives each person a number, and corruption."""

from __future__ import annotations

import math

import numpy as np

from enclave.domain.errors import InvalidInput
from enclave.synth.constants import INVALID_NHS_RATE, IntArr

_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def nhs_check_digit(first9: str) -> int | None:
    """The check digit of an NHS number's first nine digits, or None if no number can be issued.

    Each digit is multiplied by its weight (10 for the first down to 2 for the ninth); the check digit
    is 11 minus the remainder of the sum divided by 11, where 11 becomes 0 and 10 means the nine
    digits are never issued.
    """
    if len(first9) != 9 or not (first9.isascii() and first9.isdigit()):
        raise InvalidInput(f"an NHS number starts with nine digits; got {len(first9)} characters")
    total = sum(int(d) * w for d, w in zip(first9, _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(s: str) -> bool:
    """True if ``s`` is exactly ten digits whose last is the check digit of the first nine."""
    if not isinstance(s, str) or len(s) != 10 or not (s.isascii() and s.isdigit()):
        return False
    return nhs_check_digit(s[:9]) == int(s[9])


def _check_digits(body: IntArr) -> IntArr:
    """Vectorised check digits of nine-digit bodies (10 where the body cannot be issued)."""
    total = np.zeros_like(body)
    rest = body.copy()
    for weight in range(2, 11):  # last digit has weight 2
        total += (rest % 10) * weight
        rest //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


# Person i gets slot (a * i + b) mod _NHS_SLOTS; slot -> (stem, k): the number is 9, then the
# seven-digit stem, then the k-th of the (at least nine) ninth digits that give an issuable number.
_NHS_SLOTS = 9 * 10**7


def _nhs_numbers(index: IntArr, a: int, b: int) -> IntArr:
    slot = (index * a + b) % _NHS_SLOTS
    stem, k = slot // 9, slot % 9
    first8 = 90_000_000 + stem
    total8 = np.zeros_like(first8)
    rest = first8.copy()
    for weight in range(3, 11):
        total8 += (rest % 10) * weight
        rest //= 10
    bad = ((1 - total8) * 6) % 11  # the ninth digit d with (total8 + 2 d) % 11 == 1; 10: none
    ninth = np.where(k >= bad, k + 1, k)
    body = first8 * 10 + ninth
    return body * 10 + _check_digits(body)


def _nhs_permutation(rng: np.random.Generator) -> tuple[int, int]:
    a = int(rng.integers(_NHS_SLOTS // 4, 3 * _NHS_SLOTS // 4))
    while math.gcd(a, _NHS_SLOTS) != 1:
        a += 1
    return a, int(rng.integers(0, _NHS_SLOTS))


def _corrupt_check_digit(rng: np.random.Generator, nhs: IntArr) -> IntArr:
    """A copy of ``nhs`` with INVALID_NHS_RATE of the numbers given a wrong last digit."""
    bad = rng.random(nhs.size) < INVALID_NHS_RATE
    shift = rng.integers(1, 10, nhs.size)
    last = nhs % 10
    return np.where(bad, nhs - last + (last + shift) % 10, nhs)
