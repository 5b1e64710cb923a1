"""Outputs: the airlock's output requests, their states, and the two-reviewer rules of release."""
