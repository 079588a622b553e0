#!/usr/bin/env bash
# Test one built wheel of cconv with one Python: install it into a fresh
# virtual environment of that Python with no C compiler, no Cython and no
# setuptools reachable (PATH holds only the environment's own bin/), then run
# the test suite, copied outside the source tree, against the installed
# package.  tools/build_wheels.sh builds the wheels and runs this on each.
#
# Usage: bash tools/check_wheel.sh WHEEL PYTHON WORKDIR [full|quick] [oldest]
#   full    the whole suite (the default)
#   quick   the suite less its long randomised and stress parts (fuzz/,
#           SciPy's own suite, dask, leaks): every compiled module and
#           every route, without the slowest files
#   oldest  then the same wheel again, with the oldest NumPy and SciPy cconv
#           supports (1.24 and 1.10: CPython 3.10 and 3.11 only), quick
#           subset less the drop-in tests, which compare with the current
#           SciPy's rules (1.17)
# Prints "wheel-tests: PYTHON-VERSION N passed ..." lines for the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
wheel=$1 python=$2 work=$3 scope=${4:-full} oldest=${5:-}
mkdir -p "$work"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

OLDEST_SKIP=(test_signal.py test_ndimage.py test_signal_nd.py test_ndimage_nd.py)

# Nothing but the package, its type information and its compiled modules.
listing=$(unzip -l "$wheel")
if grep -E '\.(pyx|pxi|pxd|c)$|/tests/' <<< "$listing"; then
  echo "FAIL: $(basename "$wheel") holds sources or tests (listed above)"; exit 1
fi
for f in cconv/py.typed cconv/_runtime.pyi cconv/_correlate.pyi cconv/_conv2d_direct.pyi cconv/_match_cy.pyi cconv/_exact.pyi; do
  grep -q " $f\$" <<< "$listing" || { echo "FAIL: $(basename "$wheel") lacks $f"; exit 1; }
done

# run_tests VENV LABEL SCOPE: the suite (full, quick or oldest), copied outside
# the source tree with the project's pytest configuration, against VENV's cconv.
run_tests() {
  local venv=$1 label=$2 scope=$3 where ignore=()
  where=$(mktemp -d "$work/run.XXXX")
  cp -r "$src/tests" "$where/tests"
  cp "$src/pyproject.toml" "$where/"
  if [ "$scope" != full ]; then
    ignore+=(-m "not slow")  # the quick subset: no randomised or stress runs
  fi
  if [ "$scope" = oldest ]; then
    for f in "${OLDEST_SKIP[@]}"; do ignore+=(--ignore "tests/$f"); done
  fi
  (cd "$where" && PATH="$venv/bin" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      "${ignore[@]}" tests) | tee "$where/log"
  (cd "$where" && "$venv/bin/python" - "$src") <<'EOF'
import pathlib, sys, cconv
where = pathlib.Path(cconv.__file__).resolve()
assert pathlib.Path(sys.argv[1]).resolve() not in where.parents, f"imported the checkout: {where}"
print(f"tested cconv {cconv.__version__} from {where.parent}")
EOF
  echo "wheel-tests: $label ($scope): $(tail -1 "$where/log" | tr -d '=')"
}

# new_env NAME PIP-ARGS...: a fresh environment of PYTHON with the wheel installed, no compiler.
new_env() {
  local env=$work/$1; shift
  "$python" -m venv "$env"
  "$env/bin/python" -m pip install --quiet --upgrade pip
  "$env/bin/pip" uninstall --quiet --yes setuptools 2>/dev/null || true
  PATH="$env/bin" CC=false "$env/bin/pip" install --quiet --only-binary=:all: "$wheel[test,demo]" "$@"
  if PATH="$env/bin" command -v gcc cc clang >/dev/null; then echo "FAIL: a compiler is reachable"; exit 1; fi
  if "$env/bin/python" -c "import Cython" 2>/dev/null; then echo "FAIL: Cython is installed"; exit 1; fi
  if "$env/bin/pip" show -f cconv | grep -E '\.(pyx|pxi|pxd|c)$'; then
    echo "FAIL: the installed wheel holds source files"; exit 1
  fi
}

echo "== $(basename "$wheel") on Python $pyver, in a fresh environment with no compiler and no Cython"
new_env "wheel-env-$pyver"
env=$work/wheel-env-$pyver
(cd "$work" && "$env/bin/python" -m cconv --config)
# The wheel must carry every build of the direct loops, OpenMP on.
(cd "$work" && "$env/bin/python" -) <<'EOF'
import importlib, cconv._runtime as r
for name in ("cconv._correlate", "cconv._correlate_v3", "cconv._correlate_v4",
             "cconv._conv2d_direct", "cconv._conv2d_direct_v3", "cconv._conv2d_direct_v4",
             "cconv._exact", "cconv._exact_v3", "cconv._exact_v4"):
    importlib.import_module(name)
assert r.openmp_enabled(), "the wheel was built without OpenMP"
EOF
run_tests "$env" "$pyver" "$scope"

if [ "$oldest" = oldest ]; then
  echo "== the same wheel on Python $pyver with the oldest NumPy and SciPy cconv supports"
  new_env "oldest-env-$pyver" "numpy==1.24.*" "scipy==1.10.*"
  "$work/oldest-env-$pyver/bin/python" -c "import numpy, scipy; print('numpy', numpy.__version__, 'scipy', scipy.__version__)"
  run_tests "$work/oldest-env-$pyver" "$pyver, numpy 1.24, scipy 1.10" oldest
fi
