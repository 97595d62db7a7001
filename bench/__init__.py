"""Tessera's load-test harness: ``python -m bench`` (see ``python -m bench --help``)."""
