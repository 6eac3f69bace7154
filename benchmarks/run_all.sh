#!/bin/sh
# Run every benchmark one after the other (never in parallel: they measure the machine), then
# the report. `benchmarks/run_all.sh --quick` for the smoke versions. About 15 minutes in full.
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY benchmarks/bench_latency.py "$@"
$PY benchmarks/bench_latency.py --display xvfb "$@"
$PY benchmarks/bench_popstack.py "$@"
$PY benchmarks/bench_fanout.py "$@"
$PY benchmarks/bench_throughput.py "$@"
$PY benchmarks/bench_footprint.py "$@"
$PY benchmarks/import_costs.py "$@"
$PY benchmarks/bench_recovery.py "$@"
$PY benchmarks/bench_soak.py "$@"
$PY benchmarks/bench_soak.py --agent-env MALLOC_ARENA_MAX=2 --name soak-arena2 "$@"
$PY benchmarks/report.py "$@"
