#!/usr/bin/env bash
# Run cconv's core tests under valgrind memcheck and fail on any invalid read
# or write in cconv's compiled loops.
#
# The tests run against the INSTALLED package (pip install it first), copied
# into a temporary folder outside the source tree, with PYTHONMALLOC=malloc so
# that every Python object is a malloc block valgrind can check.  valgrind's
# own exit status is neutral (--error-exitcode=0: CPython, ld.so and NumPy
# report a few harmless errors of their own); instead its log is searched for
# "Invalid read" / "Invalid write" errors whose stack passes through cconv's
# compiled modules (_correlate, _conv2d_direct, _exact and their twins, _match_cy), the 4-D layer's
# direct kernels included.
#
# Usage:  [PYTHON=python3] bash tools/memcheck.sh [-k EXPR] [more pytest args...]
#         bash tools/memcheck.sh --scan LOG     (only search an existing log)
#   PYTHON          the interpreter cconv is installed in (default: python3)
#   -k EXPR         pytest's -k filter, passed through (default: "not hypothesis")
#   MEMCHECK_LOG    where to keep valgrind's log (default: a file in $TMPDIR)
#   MEMCHECK_SUPP   extra valgrind suppression files, colon-separated
#   CCONV_KERNELS   as usual: baseline or v3 (valgrind has no AVX-512, so the
#                   v4 build is never chosen under it)
#
# Exit status: 0 clean; 1 invalid accesses in cconv's modules; 2 setup
# problem (no valgrind, cconv not installed, no ERROR SUMMARY); otherwise the
# status of pytest when a test failed under valgrind.
# Python under valgrind is some 50x slower: the default run of the three core
# files (the 3-D layer's test_conv.py, the 4-D layer's test_conv2d.py and the
# matching's test_match.py, its window-sum and score loops) takes a while.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
tests=(test_conv.py test_conv2d.py test_match.py)

# Invalid reads/writes whose access stack (the part before "Address 0x...")
# passes through cconv's compiled modules: print them, exit 1 if any.  Each
# valgrind error is a block of lines ending with an empty "==PID== " line.
scan() {
  local bad all
  bad=$(awk '
    /^==[0-9]+== Invalid (read|write)/ { inblock = 1; stack = 1; block = $0; hit = 0; next }
    inblock && /^==[0-9]+== *$/ { if (hit) { print block; print "" } inblock = 0; next }
    inblock {
      block = block "\n" $0
      if ($0 ~ /Address 0x/) stack = 0
      if (stack && $0 ~ /cconv.*(_correlate|_conv2d_direct|_exact|_match_cy|_runtime)/) hit = 1
    }
    END { if (inblock && hit) print block }
  ' "$1")
  all=$(grep -cE "^==[0-9]+== Invalid (read|write)" "$1" || true)
  if [ -n "$bad" ]; then
    echo "$bad"
    echo "memcheck: invalid reads/writes in cconv's compiled modules (above; log: $1)" >&2
    return 1
  fi
  echo "== no invalid read or write in cconv's compiled modules ($all elsewhere)"
}

if [ "${1:-}" = "--scan" ]; then
  scan "${2:?"--scan needs a log file"}"
  exit
fi

kfilter="not hypothesis"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -k) kfilter=${2:?"-k needs an expression"}; shift 2 ;;
    -k*) kfilter=${1#-k}; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done

command -v valgrind > /dev/null || { echo "memcheck: valgrind not found" >&2; exit 2; }
py=$(command -v "$PYTHON") || { echo "memcheck: no python at '$PYTHON'" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cconv-memcheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log=${MEMCHECK_LOG:-$(mktemp "${TMPDIR:-/tmp}/cconv-memcheck-log.XXXXXX")}

# The tests (and the helpers they import) go to the temporary folder, with
# the project's pytest configuration (its pythonpath is the folder beside it).
cp -r "$src/tests" "$tmp/tests"
cp "$src/pyproject.toml" "$tmp/"
cd "$tmp"

# The installed package, not the checkout.
where=$("$py" -c 'import os, cconv; print(os.path.dirname(os.path.realpath(cconv.__file__)))') \
  || { echo "memcheck: $py cannot import cconv: pip install it first" >&2; exit 2; }
case "$where/" in
  "$src"/*) echo "memcheck: $py imports cconv from the source tree ($where)" >&2; exit 2 ;;
esac
echo "== cconv from $where"

# Known false positives outside cconv.  Each matches on the innermost frame
# only, so nothing whose access happens in cconv's code is hidden.
cat > "$tmp/cconv.supp" << 'EOF'
{
   ld.so reads past the end of a string in rpath expansion (word-sized strncmp)
   Memcheck:Addr8
   fun:strncmp
   fun:is_dst
}
{
   glibc's vectorised wmemcmp reads whole 32-byte words past the end of a string
   Memcheck:Addr32
   fun:__wmemcmp_avx2_movbe
}
{
   CPython refcounting on statically allocated objects (no PYTHONMALLOC debug build)
   Memcheck:Value8
   obj:*libpython3*
}
{
   CPython, same, as a conditional jump
   Memcheck:Cond
   obj:*libpython3*
}
{
   CPython, same, in a statically linked interpreter
   Memcheck:Value8
   fun:Py_*
}
{
   CPython, same, as a conditional jump, statically linked
   Memcheck:Cond
   fun:Py_*
}
EOF
supps=(--suppressions="$tmp/cconv.supp")
IFS=: read -r -a more <<< "${MEMCHECK_SUPP:-}"
for s in ${more[@]+"${more[@]}"}; do [ -n "$s" ] && supps+=(--suppressions="$s"); done

echo "== valgrind memcheck: ${tests[*]} -k '$kfilter' (log: $log)"
start=$SECONDS
status=0
# OMP_WAIT_POLICY=passive: spinning OpenMP threads crawl under valgrind's
# one-thread-at-a-time scheduler.
PYTHONMALLOC=malloc OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} \
  valgrind --tool=memcheck --error-exitcode=0 "${supps[@]}" \
    --leak-check=no --num-callers=40 --error-limit=no --log-file="$log" \
  "$py" -m pytest -c "$tmp/pyproject.toml" --rootdir "$tmp" \
    -x -q -p no:cacheprovider -k "$kfilter" ${extra[@]+"${extra[@]}"} \
    "${tests[@]/#/tests/}" || status=$?
echo "== $((SECONDS - start)) s under valgrind; pytest exit status $status"

summary=$(grep -h "ERROR SUMMARY" "$log" | tail -n 1 || true)
if [ -z "$summary" ]; then
  echo "memcheck: no ERROR SUMMARY in $log: valgrind did not finish" >&2
  exit 2
fi
echo "$summary"

scan "$log" || exit 1
exit "$status"
