#!/usr/bin/env bash
# Build every distribution and check it as a user would get it. Run by CI (.ci/run); also
# `./dev check-dist`. Uses the python of the active environment (./dev passes .venv's), which needs
# `build`, `twine` and setuptools (requirements/docs.txt).
#
#   1. an sdist of core/ and of every plugins/<x>/ git knows, a wheel from each sdist, `twine check`;
#   2. every wheel holds LICENSE, py.typed and its README as description; every sdist its LICENSE;
#   3. a clean virtual environment gets `pip install "modelshelf[s3,sklearn]"` with --no-index from
#      the built files plus a wheelhouse of third-party dependencies only (downloaded once through
#      pip's configured indexes and kept in $MODELSHELF_WHEELHOUSE): it must pull both plugins;
#   4. there `modelshelf plugins` lists them, a scikit-learn model round-trips through a local
#      shelf (fresh cache), the CLI uploads and downloads a file, `plugin new` finds its templates;
#   5. every other wheel installs beside them (--no-deps) and every plugin loads.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-python}
work=${1:-$root/build/check-dist}
wheelhouse=${MODELSHELF_WHEELHOUSE:-$root/build/wheelhouse}
start=$SECONDS
step() { echo "check_dist: [$((SECONDS - start))s] $*" >&2; }

rm -rf "$work"
mkdir -p "$work" "$wheelhouse"
dist=$work/dist

# The projects git knows (what a clone holds, and what would be published): a plugin directory
# still being written is left out until it is added. Listed once, so it cannot change under us.
projects=(core)
if git rev-parse --git-dir >/dev/null 2>&1; then
  listed=$(git ls-files 'plugins/*/pyproject.toml')
else
  listed=$(ls plugins/*/pyproject.toml)
fi
for pyproject in $listed; do projects+=("$(dirname "$pyproject")"); done
printf '%s\n' "${projects[@]}" > "$work/projects.txt"

step "building ${#projects[@]} sdists, and a wheel from each"
"$root/scripts/build_dists.sh" "$dist" "${projects[@]}" >/dev/null

step "twine check"
if ! report=$("$py" -m twine check --strict "$dist"/* 2>&1); then
  echo "$report" | grep -v PASSED >&2
  exit 1
fi

step "contents"
"$py" - "$dist" "$work/projects.txt" <<'EOF'
import sys, tarfile, zipfile
from pathlib import Path

dist = Path(sys.argv[1])
projects = Path(sys.argv[2]).read_text().split()
wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
assert len(wheels) == len(sdists) == len(projects), (len(wheels), len(sdists), len(projects))
problems = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
    if f"{info}/licenses/LICENSE" not in names:
        problems.append(f"{wheel.name}: no LICENSE")
    if not any(n.endswith("/py.typed") for n in names):
        problems.append(f"{wheel.name}: no py.typed")
    if "Description-Content-Type: text/markdown" not in metadata or "\n\n# modelshelf" not in metadata:
        problems.append(f"{wheel.name}: README is not the description")
    if wheel.name.startswith("modelshelf-") and not any(n.startswith("modelshelf/templates/storage/") for n in names):
        problems.append(f"{wheel.name}: the plugin templates are missing")
for sdist in sdists:
    with tarfile.open(sdist) as archive:
        if not any(n.endswith("/LICENSE") for n in archive.getnames()):
            problems.append(f"{sdist.name}: no LICENSE")
if problems:
    sys.exit("check_dist: " + "; ".join(problems))
EOF

step "third-party dependencies of core, s3 and sklearn into $wheelhouse"
mapfile -t requirements < <("$py" - "$dist" <<'EOF'
import sys, zipfile
from pathlib import Path

for pattern in ("modelshelf-*.whl", "modelshelf_s3-*.whl", "modelshelf_sklearn-*.whl"):
    (wheel,) = Path(sys.argv[1]).glob(pattern)
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(name).decode().splitlines():
            if line.startswith("Requires-Dist: ") and "extra ==" not in line:
                requirement = line.removeprefix("Requires-Dist: ")
                if not requirement.startswith("modelshelf"):
                    print(requirement)
EOF
)
"$py" -m pip download --quiet --disable-pip-version-check --dest "$wheelhouse" "${requirements[@]}" \
  2> >(grep -v "^WARNING: Location .* is ignored" >&2)

step "clean virtual environment: pip install \"modelshelf[s3,sklearn]\" from the built files"
"$py" -m venv "$work/venv"
venv_py=$work/venv/bin/python
"$venv_py" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$dist" --find-links "$wheelhouse" "modelshelf[s3,sklearn]"
"$venv_py" -m pip check >/dev/null

step "smoke test"
(
  cd "$work"  # never the source tree: the installed packages must be the ones imported
  export MODELSHELF_CACHE="$work/cache" MODELSHELF_URL="$work/shelf"
  unset PYTHONPATH
  "$venv_py" - <<'EOF'
import json, subprocess, sys
from pathlib import Path

import modelshelf, modelshelf_s3, modelshelf_sklearn

for module in (modelshelf, modelshelf_s3, modelshelf_sklearn):
    assert "site-packages" in module.__file__, f"{module.__name__} imported from {module.__file__}"
listed = json.loads(subprocess.run([Path(sys.executable).parent / "modelshelf", "plugins", "--json"],
                                   check=True, capture_output=True, text=True).stdout)
status = {p["distribution"]: p["status"] for p in listed}
assert status == {"modelshelf-s3": "loaded", "modelshelf-sklearn": "loaded"}, status

import numpy
from sklearn.linear_model import LogisticRegression

rng = numpy.random.default_rng(0)
X = rng.normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)
model = LogisticRegression().fit(X, y)
shelf = modelshelf.open()
v = shelf.upload("smoke/churn", model, metrics={"auc": 0.9})
assert v.serializer.name == "sklearn-skops", v.serializer
shelf.set_alias("smoke/churn", "prod", v.version)
fresh = modelshelf.open(cache=Path("cache-fresh"))
loaded = fresh.load("smoke/churn@prod")
numpy.testing.assert_array_equal(loaded.predict(X), model.predict(X))
print(f"round trip: smoke/churn:{v.version} ({v.total_size} bytes) loads with identical predictions")
EOF
  echo "weights" > weights.bin
  "$work/venv/bin/modelshelf" upload smoke/raw weights.bin --alias prod >/dev/null
  "$work/venv/bin/modelshelf" download smoke/raw@prod "$work/downloaded" >/dev/null
  cmp weights.bin "$work/downloaded/weights.bin"
  "$work/venv/bin/modelshelf" plugin new storage smoke-store --dir "$work/smoke-store" >/dev/null
  test -f "$work/smoke-store/src/modelshelf_smoke_store/storage.py"
)

step "every other wheel beside them (--no-deps): every plugin loads"
"$venv_py" -m pip install --quiet --disable-pip-version-check --no-index --no-deps "$dist"/*.whl
(
  cd "$work"
  "$work/venv/bin/modelshelf" plugins --json > "$work/plugins.json"
)
"$py" - "$work/plugins.json" "$dist" <<'EOF'
import json, sys
from pathlib import Path

listed = {p["distribution"]: p for p in json.loads(Path(sys.argv[1]).read_text())}
built = {w.name.split("-")[0].replace("_", "-") for w in Path(sys.argv[2]).glob("*.whl")} - {"modelshelf"}
missing = sorted(built - set(listed))
failed = sorted(f"{d}: {p['error']}" for d, p in listed.items() if p["status"] != "loaded")
if missing or failed:
    sys.exit(f"check_dist: plugins not listed {missing}; not loaded {failed}")
print(f"check_dist: {len(built)} plugins installed from wheels, all loaded")
EOF
step "OK"
