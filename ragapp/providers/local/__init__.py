"""Offline providers: models that ship inside PyPI packages and load with no network."""
