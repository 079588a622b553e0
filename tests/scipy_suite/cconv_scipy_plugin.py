"""Pytest plugin: SciPy's own tests, run on cconv's drop-ins.

Loaded by ``run.py`` beside this file (``python tests/scipy_suite/run.py``),
which collects the installed SciPy's test modules

- ``scipy.signal.tests.test_signaltools`` (the tests that call
  ``convolve2d`` / ``correlate2d``, ``convolve`` / ``correlate``,
  ``fftconvolve`` / ``oaconvolve`` and ``choose_conv_method``), and
- ``scipy.ndimage.tests.test_filters`` (the tests that call ``correlate`` /
  ``convolve`` and ``correlate1d`` / ``convolve1d``),

and swaps SciPy's functions for cconv's in every selected test, the way the
test modules reach them:

- ``test_signaltools`` imports the names (``from scipy.signal import
  convolve2d, correlate2d, ...``) and also calls ``signal.convolve2d``,
  ``signal.convolve``, ...: the module's globals and the attributes of
  ``scipy.signal`` are patched for the duration of each test;
- ``test_filters`` calls ``ndimage.correlate`` / ``ndimage.convolve`` /
  ``ndimage.correlate1d`` / ``ndimage.convolve1d``: the attributes of
  ``scipy.ndimage`` are patched for each test.  Its reference helper
  ``_complex_correlate`` (the expected value of the complex tests) keeps
  running SciPy's functions;
- functions captured at import in ``@pytest.mark.parametrize`` lists
  (``func``, ``filter_func``) are swapped in the collected items' parameters.

Only the signal module's names are patched in signal tests and only the
ndimage ones in ndimage tests: a SciPy function another module's test uses
as its reference (``ndi.convolve`` in ``TestConvolve2d``) stays SciPy's.
Where a test's expected value comes from another function of the same
module (``fftconvolve`` in ``TestOAConvolve``, ``convolve2d`` in
``TestFFTConvolve::test_random_data_multidim_axes``), ``SCIPY_REFERENCES``
keeps that one SciPy's, so that cconv is compared with SciPy, not with itself.

Selection: ``SELECT`` names, per module, the tests (classes, functions, or
parametrized tests whose function parameter is one of the swapped functions)
that call the functions; ``DESELECT`` takes out, with the reason, the ones
out of cconv's scope.  Every other test of the two modules is "not
selected".  A selected test that passes without calling any of cconv's
functions fails (the selection would be wrong), and the summary prints per
module how many of SciPy's tests ran, passed and were deselected.
"""

from __future__ import annotations

import collections
import functools
import sys
import types

import numpy as np
import pytest

import cconv.ndimage
import cconv.signal

SIGNAL = "scipy.signal.tests.test_signaltools"
NDIMAGE = "scipy.ndimage.tests.test_filters"
MODULES = (SIGNAL, NDIMAGE)

# --------------------------------------------------------------------------
# What runs: the tests (by class or function name, node ids inside the
# module) that call the swapped functions.  A parametrized test whose
# parameters include functions (``func``, ``filter_func``) is selected only
# for the parameter sets that name a swapped function.
SELECT = {
    SIGNAL: (
        "TestConvolve::",
        "TestConvolve2d::",
        "TestFFTConvolve::",
        "TestOAConvolve::",
        "TestAllFreqConvolves::",
        "test_convolve_longdtype_input",
        "TestCorrelateReal::",
        "TestCorrelate::",
        "TestCorrelateComplex::",
        "TestCorrelate2d::test_consistency_correlate_funcs",
        "TestCorrelate2d::test_consistency_correlate_funcs_2",
        "TestCorrelate2d::test_invalid_shapes",
        "TestCorrelate2d::test_complex_input",
        "test_correlation_lags",
        "test_choose_conv_method",
        "test_choose_conv_method_2",
    ),
    NDIMAGE: (
        *(f"TestNdimageFilters::test_correlate{i:02d}" for i in range(1, 27)),
        "TestNdimageFilters::test_correlate01_overlap",
        "TestNdimageFilters::test_correlate_mode_sequence",
        "TestNdimageFilters::test_correlate_complex_kernel",
        "TestNdimageFilters::test_correlate_complex_kernel_cval",
        "TestNdimageFilters::test_correlate_complex_kernel_invalid_cval",
        "TestNdimageFilters::test_correlate_complex_input",
        "TestNdimageFilters::test_correlate_complex_input_and_kernel",
        "TestNdimageFilters::test_correlate_complex_input_and_kernel_cval",
        "TestNdimageFilters::test_correlate1d_complex_kernel",
        "TestNdimageFilters::test_correlate1d_complex_kernel_cval",
        "TestNdimageFilters::test_correlate1d_complex_input",
        "TestNdimageFilters::test_correlate1d_complex_input_cval",
        "TestNdimageFilters::test_correlate1d_complex_input_and_kernel",
        "TestNdimageFilters::test_correlate1d_complex_input_and_kernel_cval",
        "TestNdimageFilters::test_correlate_convolve_axes",
        "TestNdimageFilters::test_filter_weights_subset_axes_origins",
        "TestNdimageFilters::test_filter_invalid_axes",
        "TestNdimageFilters::test_filter_invalid_footprint_ndim",
        "TestNdimageFilters::test_filter_tuple_length_mismatch",
        # correlate1d is the reference of SciPy's prewitt, sobel, laplace and
        # generic_filter1d here; correlate that of generic_filter, on 3x4 data
        *(f"TestNdimageFilters::test_{f}{i:02d}" for f in ("prewitt", "sobel") for i in (1, 2, 3)),
        "TestNdimageFilters::test_laplace01",
        "TestNdimageFilters::test_laplace02",
        "TestNdimageFilters::test_generic_filter1d01",
        "TestNdimageFilters::test_generic_filter01",
        *(f"TestNdimageFilters::test_extend{i:02d}" for i in range(1, 11)),
        "test_bad_convolve_and_correlate_origins",
        "TestThreading::test_correlate",
        "TestThreading::test_correlate1d",
    ),
}

# --------------------------------------------------------------------------
# Deselected, each with the reason.  Keys as in SELECT (a prefix of the node
# id inside the module).
_NAN_LOCAL = ("NaN and Inf stay local on cconv's FFT route, the one deliberate difference from SciPy "
              "(which spreads them and warns): no warning to expect")
DESELECT = {
    SIGNAL: {
        "TestFFTConvolve::test_fft_nan": _NAN_LOCAL,
    },
    NDIMAGE: {},
}

# Tests whose *expected* value comes from another function of the module
# that cconv also replaces: there that function stays SciPy's (the
# reference), and only the one under test is cconv's.
SCIPY_REFERENCES = {
    f"{SIGNAL}::TestOAConvolve": ("fftconvolve",),
    f"{SIGNAL}::TestFFTConvolve::test_random_data_multidim_axes": ("convolve2d",),
    f"{SIGNAL}::test_convolve_longdtype_input": ("convolve",),
}


class _State:
    calls = 0  # calls of cconv's functions in the running test


_state = _State()


def _counted(cconv_function, scipy_function):
    @functools.wraps(cconv_function)
    def wrapper(*args, **kwargs):
        _state.calls += 1
        return cconv_function(*args, **kwargs)

    wrapper.__cconv_swapped__ = scipy_function
    return wrapper


def _swaps() -> dict[str, dict[str, tuple]]:
    """Per test module: name -> (SciPy's function, cconv's counted wrapper)."""
    import scipy.ndimage
    import scipy.signal

    out = {SIGNAL: {}, NDIMAGE: {}}
    for name in cconv.signal.__all__:
        f = getattr(scipy.signal, name)
        out[SIGNAL][name] = (f, _counted(getattr(cconv.signal, name), f))
    for name in cconv.ndimage.__all__:
        f = getattr(scipy.ndimage, name)
        out[NDIMAGE][name] = (f, _counted(getattr(cconv.ndimage, name), f))
    return out


SWAPS = _swaps()
_BY_SCIPY_FUNCTION = {f: w for table in SWAPS.values() for f, w in table.values()}


def _module_of(item) -> str | None:
    mod = getattr(item, "module", None)
    name = getattr(mod, "__name__", "")
    return name if name in MODULES else None


def _local_id(item) -> str:
    """The node id inside its module: ``Class::test[params]``."""
    return item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.nodeid


def _function_params(item) -> list:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    return [v for v in callspec.params.values()
            if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, functools.partial))]


def _matches(local_id: str, prefixes) -> str | None:
    base = local_id.split("[", 1)[0]
    for p in prefixes:
        if p.endswith("::") and base.startswith(p) or base == p:
            return p
    return None


def pytest_configure(config):
    config._cconv_report = collections.defaultdict(collections.Counter)
    config._cconv_deselected = collections.defaultdict(collections.Counter)
    config._cconv_results = {}


def pytest_collection_modifyitems(session, config, items):
    keep, dropped = [], []
    report = config._cconv_report
    for item in items:
        module = _module_of(item)
        if module is None:
            dropped.append(item)
            continue
        local = _local_id(item)
        report[module]["collected"] += 1
        selected = _matches(local, SELECT[module])
        if selected is not None:
            params = _function_params(item)
            if params and not any(p in _BY_SCIPY_FUNCTION for p in params):
                selected = None  # parametrized over other filters
        if selected is None:
            report[module]["not selected (do not call the functions)"] += 1
            dropped.append(item)
            continue
        backend = getattr(getattr(item, "callspec", None), "params", {}).get("xp")
        reason = DESELECT[module].get(_matches(local, DESELECT[module]) or "")
        if backend is not None and backend is not np:
            reason = "array-API backend other than NumPy: out of scope (cconv takes NumPy arrays)"
        if reason is not None:
            config._cconv_deselected[module][reason] += 1
            report[module]["deselected"] += 1
            dropped.append(item)
            continue
        # Functions captured in parametrize lists at import time.
        for key, value in item.callspec.params.items() if hasattr(item, "callspec") else ():
            if isinstance(value, types.FunctionType) and value in _BY_SCIPY_FUNCTION:
                item.callspec.params[key] = _BY_SCIPY_FUNCTION[value]
        report[module]["selected"] += 1
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # Swap before the fixtures are set up, undo after the teardown.
    module = _module_of(item)
    patch = pytest.MonkeyPatch()
    item._cconv_patch = patch
    base = f"{module}::{_local_id(item).split('[', 1)[0]}"
    references = {name for key, names in SCIPY_REFERENCES.items() if base == key or base.startswith(key + "::")
                  for name in names}
    if module == SIGNAL:
        import scipy.signal

        for name, (_, wrapper) in SWAPS[SIGNAL].items():
            if name in references:
                continue
            patch.setattr(scipy.signal, name, wrapper)
            if hasattr(item.module, name):
                patch.setattr(item.module, name, wrapper)
    elif module == NDIMAGE:
        import scipy.ndimage

        for name, (_, wrapper) in SWAPS[NDIMAGE].items():
            patch.setattr(scipy.ndimage, name, wrapper)
        reference = getattr(item.module, "_complex_correlate", None)
        if reference is not None:
            patch.setattr(item.module, "_complex_correlate", _with_scipy(reference))
    _state.calls = 0
    yield


def _with_scipy(reference):
    """``reference`` run with SciPy's own ndimage functions (the expected values)."""

    @functools.wraps(reference)
    def wrapper(*args, **kwargs):
        import scipy.ndimage

        saved = {name: getattr(scipy.ndimage, name) for name in SWAPS[NDIMAGE]}
        try:
            for name, (original, _) in SWAPS[NDIMAGE].items():
                setattr(scipy.ndimage, name, original)
            return reference(*args, **kwargs)
        finally:
            for name, value in saved.items():
                setattr(scipy.ndimage, name, value)

    return wrapper


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    patch = getattr(item, "_cconv_patch", None)
    if patch is not None:
        patch.undo()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    module = _module_of(item)
    if module is None:
        return
    if call.when == "call" and report.passed and _state.calls == 0:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} is selected as calling cconv's drop-ins but made no call "
                           "to them: fix SELECT in tests/scipy_suite/cconv_scipy_plugin.py")
    # One outcome per test: the setup's if it did not pass, else the call's,
    # else a failed teardown.
    results = item.config._cconv_results
    if call.when == "setup" and not report.passed or call.when == "call":
        results[item.nodeid] = (module, "xfailed" if hasattr(report, "wasxfail") else report.outcome)
    elif call.when == "teardown" and report.failed:
        results[item.nodeid] = (module, "failed")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    tr.section("SciPy's own tests on cconv's drop-ins")
    import scipy

    tr.write_line(f"SciPy {scipy.__version__} (tests from {scipy.__file__.rsplit('/', 1)[0]}), "
                  f"NumPy {np.__version__}, cconv {cconv.__version__}")
    for module in MODULES:
        counts = config._cconv_report.get(module, collections.Counter())
        outcomes = collections.Counter(o for m, o in config._cconv_results.values() if m == module)
        ran, passed, failed = sum(outcomes.values()), outcomes["passed"], outcomes["failed"]
        skipped = outcomes["skipped"] + outcomes["xfailed"]
        tr.write_line(
            f"{module}: {ran} ran, {passed} passed, {failed} failed, {skipped} skipped; "
            f"{counts.get('deselected', 0)} deselected; "
            f"{counts.get('not selected (do not call the functions)', 0)} not selected "
            f"(do not call the functions) of {counts.get('collected', 0)} collected"
        )
        for reason, n in sorted(config._cconv_deselected.get(module, {}).items()):
            tr.write_line(f"    deselected {n}: {reason}")
    sys.stdout.flush()
