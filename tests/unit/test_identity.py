"""Identity rules that need no database: roles, tokens, paired permission functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.identity.accounts import (
    Actor,
    ApiToken,
    Role,
    TokenKind,
    User,
    can_manage_token,
    can_manage_users,
    check_manage_token,
    check_manage_users,
    generate_token,
    hash_token,
    parse_role,
    validate_username,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def user(uid: int, *roles: Role, active: bool = True, accredited: date | None = None) -> User:
    return User(uid, f"u{uid}", "", "", "", frozenset(roles), active, accredited, NOW)


def token(
    uid: int, *, project: int | None = None, revoked: bool = False, ttl: timedelta = timedelta(days=1)
) -> ApiToken:
    return ApiToken(
        1, uid, TokenKind.PERSONAL, "", "enc_x", NOW, NOW + ttl, NOW if revoked else None, project
    )


def test_token_expiry_and_revocation_count_at_once() -> None:
    """A token is refused from the instant it expires or is revoked."""
    t = token(1, ttl=timedelta(hours=1))
    assert t.problem(NOW) is None
    assert t.problem(NOW + timedelta(minutes=59, seconds=59)) is None
    assert t.problem(NOW + timedelta(hours=1)) == "expired"
    assert token(1, revoked=True).problem(NOW) == "revoked"


def test_tokens_are_random_and_stored_as_hashes() -> None:
    """Two tokens never repeat, and the stored hash is not the token."""
    a, b = generate_token(), generate_token()
    assert a != b
    assert a.startswith("enc_")
    assert len(a) > 40
    assert hash_token(a) != a
    assert len(hash_token(a)) == 64


@pytest.mark.parametrize(
    ("actor", "allowed"),
    [
        (Actor.operator("root"), True),
        (Actor.for_user(user(1, Role.ADMIN)), True),
        (Actor.for_user(user(1, Role.ADMIN, active=False)), False),
        (Actor.for_user(user(1, Role.ADMIN), token(1, project=7)), False),
        (Actor.for_user(user(1, Role.RESEARCHER, Role.CUSTODIAN, Role.REVIEWER)), False),
    ],
)
def test_manage_users_pairs_can_and_check(actor: Actor, allowed: bool) -> None:
    """``can_manage_users`` and ``check_manage_users`` always agree."""
    assert can_manage_users(actor) is allowed
    if allowed:
        check_manage_users(actor)
    else:
        with pytest.raises(PermissionDenied, match="admin role"):
            check_manage_users(actor)


def test_token_management_is_owner_or_admin_and_never_from_a_workspace() -> None:
    """Users manage their own tokens; admins anyone's; a workspace token none."""
    mine = token(1)
    assert can_manage_token(Actor.for_user(user(1)), mine)
    assert not can_manage_token(Actor.for_user(user(2)), mine)
    assert can_manage_token(Actor.for_user(user(2, Role.ADMIN)), mine)
    assert not can_manage_token(Actor.for_user(user(1), token(1, project=3)), mine)
    with pytest.raises(PermissionDenied):
        check_manage_token(Actor.for_user(user(2)), mine)


def test_accreditation_is_valid_through_its_expiry_day() -> None:
    """Safe people: valid up to and including the expiry date, never without one."""
    u = user(1, Role.RESEARCHER, accredited=date(2026, 6, 1))
    assert u.is_accredited(date(2026, 6, 1))
    assert not u.is_accredited(date(2026, 6, 2))
    assert not user(2, Role.RESEARCHER).is_accredited(date(2020, 1, 1))


def test_usernames_and_roles_are_validated_with_the_fix_named() -> None:
    """Bad usernames and unknown roles are refused with a sentence that says what is allowed."""
    assert validate_username("alice.smith") == "alice.smith"
    for bad in ["A", "1abc", "al ice", "x", "a" * 65, "alice;drop"]:
        with pytest.raises(InvalidInput, match="invalid username"):
            validate_username(bad)
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(InvalidInput, match="roles are: researcher, custodian, reviewer, admin"):
        parse_role("superuser")
