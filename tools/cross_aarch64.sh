#!/usr/bin/env bash
# Cross-compile cconv's extensions for aarch64 Linux (CPython 3.11) with
# Debian's gcc-aarch64-linux-gnu, to show that the sources and setup.py's
# flag choice are portable; then, unless told not to, run part of the test
# suite on the result under qemu-user.
#
# The build is the ordinary `setup.py build_ext`, run by an x86-64 CPython
# 3.11 that is pointed at Debian's aarch64 build configuration
# (_sysconfigdata__aarch64-linux-gnu, from libpython3.11-dev:arm64): its
# compiler, flags, headers and extension suffix.  setup.py's probes must find
# that the compiler does not target x86-64 (no ISA twins, no CPU query) and
# that it links OpenMP.
#
# The run uses an aarch64 python made here: a three-line launcher of Debian's
# aarch64 libpython3.11 (Py_BytesMain), with Debian's standard library, and
# NumPy, SciPy and pytest's aarch64 wheels from PyPI.
#
# Needs (Debian, with `dpkg --add-architecture arm64`):
#   build: gcc-aarch64-linux-gnu libpython3.11-dev:arm64
#   run:   qemu-user libgomp1:arm64 libstdc++6:arm64 (NumPy's wheels need the latter)
#
# Usage: bash tools/cross_aarch64.sh [WORKDIR] [build|run]   (default: run)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
work=$(realpath -m "${1:-$(mktemp -d)}")
mode=${2:-run}
triplet=aarch64-linux-gnu
sysconfigdata=/usr/lib/python3.11/_sysconfigdata__$triplet.py
mkdir -p "$work"

for need in "$triplet-gcc" "$sysconfigdata" /usr/include/$triplet/python3.11/pyconfig.h; do
  if ! command -v "$need" >/dev/null && [ ! -e "$need" ]; then
    echo "FAIL: $need is missing: apt-get install gcc-aarch64-linux-gnu libpython3.11-dev:arm64" \
         "(after dpkg --add-architecture arm64)"; exit 1
  fi
done

# --- build -------------------------------------------------------------------
python=$(bash "$src/tools/find_python.sh" 3.11)
"$python" -m venv "$work/host"
"$work/host/bin/python" -m pip install --quiet --upgrade pip
"$work/host/bin/pip" install --quiet "Cython>=3.0" "setuptools>=77"
mkdir -p "$work/sysconfig"
cp "$sysconfigdata" "$work/sysconfig/"
echo "== cross-compiling for $triplet: setup.py build_ext with $triplet-gcc"
rm -rf "$work/lib" "$work/tmp"
(export _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__$triplet _PYTHON_HOST_PLATFORM=linux-aarch64 \
        PYTHONPATH=$work/sysconfig CC=$triplet-gcc
 "$work/host/bin/python" -c "import sysconfig; assert sysconfig.get_config_var('MULTIARCH') == '$triplet'"
 "$work/host/bin/python" setup.py build_ext --build-lib "$work/lib" --build-temp "$work/tmp") \
  > "$work/build.log" 2>&1 || { tail -60 "$work/build.log"; exit 1; }
grep "cconv build:" "$work/build.log"
grep -q "cconv build: ISA twins: none (the compiler does not target x86-64)" "$work/build.log" \
  || { echo "FAIL: setup.py did not see that $triplet-gcc targets no x86-64"; exit 1; }
modules=$(cd "$work/lib/cconv" && ls)
echo "built: $(echo $modules)"
# One module per baseline .pyx of cconv/ (the _v3/_v4 twins are x86-64's), and no twin.
expected=$(cd cconv && ls *.pyx | grep -v '_v[34]\.pyx$' | sed 's/\.pyx$//')
built=$(sed 's/\..*//' <<< "$modules")
[ "$built" = "$expected" ] || { echo "FAIL: expected the baseline modules $(echo $expected), and no twins"; exit 1; }
for so in "$work"/lib/cconv/*.so; do
  case $so in *.cpython-311-$triplet.so) ;; *) echo "FAIL: $so: not an aarch64 suffix"; exit 1 ;; esac
  readelf -h "$so" | grep -q "Machine: *AArch64" || { echo "FAIL: $so is not AArch64 code"; exit 1; }
done
readelf -d "$work/lib/cconv/_correlate.cpython-311-$triplet.so" | grep -q "libgomp" \
  || { echo "FAIL: the aarch64 loops are not linked with OpenMP"; exit 1; }
echo "aarch64 modules: AArch64 ELF, $triplet suffix, OpenMP linked, baseline loops only"
[ "$mode" = run ] || exit 0

# --- run under qemu-user ----------------------------------------------------------
for need in /usr/bin/qemu-aarch64 /usr/lib/$triplet/libgomp.so.1 /usr/lib/$triplet/libstdc++.so.6; do
  [ -e "$need" ] || { echo "FAIL: $need missing: apt-get install qemu-user libgomp1:arm64 libstdc++6:arm64"; exit 1; }
done
echo "== an aarch64 python (Debian's libpython3.11) and aarch64 wheels of the test dependencies"
printf '#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n' \
  > "$work/launcher.c"
"$triplet-gcc" -O1 -o "$work/python3.11" "$work/launcher.c" -I/usr/include/python3.11 \
  -I/usr/include/$triplet/python3.11 -L/usr/lib/$triplet -lpython3.11 -Wl,-rpath-link,/usr/lib/$triplet
"$work/host/bin/pip" install --quiet --target "$work/site" --upgrade --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
  numpy scipy "threadpoolctl>=3.1" pytest hypothesis
cp "$src"/cconv/*.py "$src"/cconv/py.typed "$work/lib/cconv/"
rm -rf "$work/tests"
cp -r "$src/tests" "$work/tests"
cp "$src/pyproject.toml" "$work/"  # the pytest configuration
arm() { PYTHONHOME=/usr PYTHONPATH="$work/lib:$work/site" PYTHONNOUSERSITE=1 qemu-aarch64 "$work/python3.11" "$@"; }
(cd "$work" && arm -c "import platform; print('python', platform.python_version(), 'on', platform.machine())" \
  && arm -m cconv --config)
# Every compiled module, a few cases each (emulation is slow): the build and
# dispatch tests, the direct loops and the FFT route against SciPy (with NaN
# and Inf), the 4-D layer's kernels against the reference, and matching (its
# 168-case reference grid, the photograph and the tests that start a child
# Python, which qemu-user cannot exec here, left to the native runs).
echo "== tests under qemu-aarch64 (build and dispatch, direct loops, 4-D layer, matching)"
select="test_portability or matches_scipy_larger or method_matches_scipy or nan_and_inf"
select+=" or test_against_reference or bit_reproducible or (test_match.py and not eye and not huge_min_distance)"
(cd "$work" && arm -m pytest -q -p no:cacheprovider --durations=5 \
   --deselect tests/test_match.py::test_against_reference \
   -k "$select" \
   tests/test_portability.py tests/test_conv.py tests/test_conv2d.py tests/test_match.py)
