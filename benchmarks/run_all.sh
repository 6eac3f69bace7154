#!/bin/sh
# Run every benchmark one after the other (never in parallel: they measure the machine), then
# the report: the commands behind BENCHMARKS.md. `benchmarks/run_all.sh --quick` for the smoke
# versions. About 15 minutes in full.
#
# The proposals of BENCHMARKS.md are in the product now, so the runs measure the product as it
# is (--no-patch); benchmarks/results/before/ holds the run from before they were made, with
# each proposal patched in (the --patch options, which now would stack on the product's own
# versions of the same changes).
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY benchmarks/bench_latency.py --no-patch "$@"
$PY benchmarks/bench_latency.py --no-patch --display xvfb "$@"
$PY benchmarks/bench_popstack.py --no-patch "$@"
$PY benchmarks/bench_fanout.py --no-patch "$@"
$PY benchmarks/bench_throughput.py --no-patch "$@"
$PY benchmarks/bench_footprint.py "$@"
$PY benchmarks/import_costs.py "$@"
$PY benchmarks/bench_recovery.py --no-patch "$@"
$PY benchmarks/bench_soak.py "$@"
$PY benchmarks/bench_soak.py --agent-env MALLOC_ARENA_MAX=2 --name soak-arena2 "$@"
$PY benchmarks/report.py "$@"
