"""Adapters to the metadata database: models, repositories, sessions, migrations."""
