# Sourced by the wheel, compiler and cross-build checks: the test files the
# "quick" subset leaves out (long randomised and stress runs: the fuzz
# files, SciPy's own suite, Dask, the leak rounds), as pytest --ignore
# arguments in the array QUICK_IGNORE.  What stays covers every compiled
# module and every route.
QUICK_IGNORE=()
for f in fuzz scipy_suite test_dask.py test_leaks.py; do
  QUICK_IGNORE+=(--ignore "tests/$f")
done
