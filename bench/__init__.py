"""Tessera's load-test harness.

Run from the repository root::

    .venv/bin/python -m bench                  # both backends, every scenario, 10 s each
    .venv/bin/python -m bench --backend sqlite --scenario get --duration 5
    .venv/bin/python -m bench --profile        # also profile GET-by-id and the list under pyinstrument

For each backend it starts a real ``tessera serve`` on a free loopback port with a fresh
data dir (PostgreSQL: the ``tessera_bench`` database, emptied first), seeds it over the
public API, drives each scenario from a separate load-generator process, and prints a
Markdown table that is also written to ``bench/results/latest.md`` and appended to
``bench/results/history.md``. Profiles go to ``bench/results/profiles/``.

Files: ``cli`` (orchestration and flags), ``server`` (the server process and its
database), ``seed`` (users and tasks over the API), ``loadgen`` (the load generator
process), ``report`` (the Markdown), ``profiling`` (``--profile``).
"""
