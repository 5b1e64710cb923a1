"""Queries: DP query plans, cohort definitions, and the privacy-budget ledger they are charged to."""
