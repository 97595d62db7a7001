"""Tessera's load-test harness.

Run from the repository root::

    .venv/bin/python -m bench                  # both backends, every scenario, 10 s each
    .venv/bin/python -m bench --backend sqlite --scenario get --duration 5
    .venv/bin/python -m bench --profile        # also profile GET-by-id and the list under pyinstrument
    .venv/bin/python -m bench --topology split --backend sqlite   # only the three-process topology
    .venv/bin/python -m bench.events           # events: outbox -> bus -> inbox per bus backend
    .venv/bin/python -m bench --suite events --backend nats       # the same, through this entry point

For each backend and topology it starts real servers on free loopback ports with a fresh
data dir (PostgreSQL: the ``tessera_bench`` database, emptied first): the monolith is one
``tessera serve``; the split is ``tessera serve --group`` identity, tasks and a pure
gateway, driven through the gateway. It seeds them over the public API, drives each
scenario from a separate load-generator process, and prints a Markdown table (monolith and
split side by side) that is also written to ``bench/results/latest.md`` and appended to
``bench/results/history.md``. On the first backend, with the split up, it also measures
the added latency per remote call (``bench.rpc_latency``) and sequential GETs by route.
Profiles go to ``bench/results/profiles/``.

Files: ``cli`` (orchestration and flags), ``server`` (the server processes and their
database), ``seed`` (users and tasks over the API), ``loadgen`` (the load generator
process), ``rpc_latency`` (one contract call in-process against remote), ``report`` (the
Markdown), ``profiling`` (``--profile``), ``events`` (the events benchmark: throughput,
commit-to-handled latency and lost/duplicated events per bus backend, written to
``bench/results/events.md``).
"""
