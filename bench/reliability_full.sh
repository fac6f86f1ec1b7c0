#!/usr/bin/env bash
# Run the reliability suite at full counts (docs/reliability.md) and keep its figures.
#
#   bench/reliability_full.sh [report.jsonl]
#
# Every test appends one JSON line of figures to the report (default:
# bench/results/reliability-full-<UTC time>.jsonl). Takes 30-60 minutes on 2 cores; it starts
# moto, Azurite and fake-gcs-server itself (run `npm install` at the repository root first).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
report="${1:-bench/results/reliability-full-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
: > "$report"
echo "figures -> $report" >&2
MODELSHELF_RELIABILITY_FULL=1 MODELSHELF_RELIABILITY_REPORT="$(realpath "$report")" \
    python -m pytest tests/reliability -q -rxX -p no:cacheprovider "${@:2}"
