#!/bin/sh
# Run every benchmark one after the other (never in parallel: they measure the machine), then
# the report: the commands behind BENCHMARKS.md. `benchmarks/run_all.sh --quick` for the smoke
# versions. About 15 minutes in full.
#
# The runs measure the product as it is; benchmarks/results/before/ holds the first run, from
# before the changes BENCHMARKS.md lists were made (each then measured by patching it into the
# benchmark's own child process; those --patch options are gone now that the product has them).
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
$PY benchmarks/bench_frames.py "$@"
$PY benchmarks/bench_recovery.py "$@"
$PY benchmarks/bench_soak.py "$@"
$PY benchmarks/bench_soak.py --agent-env MALLOC_ARENA_MAX=2 --name soak-arena2 "$@"
$PY benchmarks/bench_shipped.py "$@"
$PY benchmarks/bench_shipped.py --calls 10000 --burst 10000 --name shipped-10k "$@"
$PY benchmarks/report.py "$@"
