"""Domain exceptions: one flat hierarchy, translated once at the edge.

Every exception carries a machine-readable ``code`` and a sentence for the user that says what was
tried and, where there is one, what would be allowed. The API maps each class to an HTTP status in
``enclave.api.errors``; the CLI prints the sentence and exits non-zero. Messages never contain data
values from the research store.
"""

from __future__ import annotations


class EnclaveError(Exception):
    """Base class of every error a user can cause."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(EnclaveError):
    """The request is well-formed but its content is not acceptable."""

    code = "invalid_input"


class NotFound(EnclaveError):
    code = "not_found"


class AlreadyExists(EnclaveError):
    code = "already_exists"


class PayloadTooLarge(EnclaveError):
    """An upload over the configured size limit."""

    code = "payload_too_large"


class InvalidState(EnclaveError):
    """The object is not in a state that allows the action ("cannot X while Y")."""

    code = "invalid_state"


class Conflict(InvalidState):
    """The change breaks a uniqueness rule of the records, usually because the same change was just
    made by someone else (the same plan released, the same review recorded). Repositories raise it
    instead of their database's error; a use case that expects it says what happened instead."""

    code = "conflict"


class BudgetExceeded(InvalidState):
    """The query would spend more privacy budget than the project has left."""

    code = "budget_exceeded"


class AuthenticationFailed(EnclaveError):
    """No valid credentials: unknown user, wrong password, unknown/expired/revoked token."""

    code = "authentication_failed"


class PermissionDenied(EnclaveError):
    """Valid credentials, but not allowed to do this."""

    code = "permission_denied"


class ConfigurationError(EnclaveError):
    """The service is configured in a way that is unsafe or cannot work."""

    code = "configuration_error"


class InternalError(Exception):
    """Something that should never happen: this is probably a bug in Enclave.

    Not an ``EnclaveError``: the API answers 500 and logs it, and the user sees no detail.
    """
