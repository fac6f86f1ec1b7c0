#!/usr/bin/env bash
# Build an sdist of core/ and of every plugins/<x>/ (or of the PROJECT directories given), and a
# wheel from each sdist, into OUTDIR (default dist/):
#   scripts/build_dists.sh [OUTDIR [PROJECT...]]
# Without build isolation, so it needs only the active environment's setuptools and `build`
# (requirements/docs.txt), and no index: `./dev build` runs it with .venv's python. Two builds
# run at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python}
out=$(realpath -m "${1:-dist}")
shift || true
projects=("$@")
if [ ${#projects[@]} -eq 0 ]; then
  for pyproject in core/pyproject.toml plugins/*/pyproject.toml; do projects+=("$(dirname "$pyproject")"); done
fi
mkdir -p "$out"
export out
printf '%s\n' "${projects[@]}" | xargs -P 2 -I{} sh -c '
  log=$(mktemp)
  if ! "$PYTHON" -m build --no-isolation --outdir "$out" "{}" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "build_dists: building {} failed" >&2; exit 255
  fi
  rm -f "$log"'
ls "$out"
