#!/usr/bin/env bash
# Build cconv from its sdist with another compiler (CC, as pip users set it)
# into a fresh environment, check that setup.py's probes found what that
# compiler can do, and run the test suite against the result.
#
# Usage: CC=clang bash tools/check_compiler.sh SDIST WORKDIR OPENMP [full|quick]
#   OPENMP   on | off: whether the compiler is expected to build OpenMP;
#            off also checks that the build warned and that show_config says
#            why the loops run on one thread
#   quick    the suite less its long randomised and stress files, as in
#            tools/check_wheel.sh (the default: full)
# The AVX2/AVX-512 twins are expected on an x86-64 machine (any compiler that
# accepts -march=x86-64-v3/-v4; set CCONV_EXPECT_TWINS=none for one that doesn't).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
sdist=$(realpath "$1") work=$2 openmp=$3 scope=${4:-full}
twins=${CCONV_EXPECT_TWINS:-v3, v4}
cc=${CC:?set CC to the compiler to check}
mkdir -p "$work"
echo "== cconv built from $(basename "$sdist") with CC=$cc ($("${cc%% *}" --version | head -1))"

python3 -m venv "$work/env"
"$work/env/bin/python" -m pip install --quiet --upgrade pip
# The dependencies first (from pip's cache), then cconv itself, built afresh.
"$work/env/bin/pip" install --quiet numpy scipy "threadpoolctl>=3.1" pytest hypothesis "dask[array]" distributed \
  matplotlib mypy
(cd "$work" && "$work/env/bin/pip" install --verbose --no-cache-dir --no-deps "$sdist") \
  > "$work/build.log" 2>&1 || { tail -60 "$work/build.log"; exit 1; }
grep "cconv build:" "$work/build.log" | sed 's/^ *//'

fail() { echo "FAIL ($cc): $*"; exit 1; }
grep -q "cconv build: ISA twins: $twins\$" "$work/build.log" || fail "expected ISA twins: $twins"
if [ "$openmp" = on ]; then
  grep -q "cconv build: OpenMP: " "$work/build.log" || fail "no OpenMP, where it was expected"
else
  grep -q "cconv build: WARNING: the compiler builds no OpenMP program" "$work/build.log" \
    || fail "no warning that the build has no OpenMP"
fi
(cd "$work" && "$work/env/bin/python" -m cconv --config)
(cd "$work" && "$work/env/bin/python" - "$openmp" "$cc") <<'EOF'
import sys, cconv, cconv._config as c, cconv._runtime as r
want, cc = sys.argv[1] == "on", sys.argv[2]
facts = c.config()
assert facts["compiler"].split()[0] in cc, (facts["compiler"], cc)
assert r.openmp_enabled() == want, facts["openmp"]
if not want:
    assert facts["openmp"].startswith("off: the compiler did not build an OpenMP program"), facts["openmp"]
    assert cconv.get_num_threads() == 1
print(f"checked: built by {facts['compiler']}, openmp {facts['openmp']!r}, kernels {facts['kernels']}")
EOF

ignore=()
if [ "$scope" = quick ]; then
  ignore=(-m "not slow")  # the quick subset: no randomised or stress runs
fi
rm -rf "$work/tests"
cp -r "$src/tests" "$work/tests"
cp "$src/pyproject.toml" "$work/"  # the pytest configuration
(cd "$work" && "$work/env/bin/python" -m pytest -q -p no:cacheprovider "${ignore[@]}" tests)
