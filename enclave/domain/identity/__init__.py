"""Identity: accounts, roles, accreditation, API tokens, and the actor behind every call."""
