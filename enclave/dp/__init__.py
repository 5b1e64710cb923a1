"""Differential privacy: the OpenDP engine that plans and releases queries over the research store."""
