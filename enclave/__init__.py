"""Enclave: a privacy-preserving analytics enclave for health data."""

__version__ = "0.1.0"
