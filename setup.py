"""Build of cconv's compiled extensions; all metadata lives in pyproject.toml.

The compiled modules, one per family of loops:

  cconv._runtime      OpenMP and CPU queries (baseline flags)
  cconv._correlate    the direct loops of the 3-D engine; on x86-64 also
                      compiled as _correlate_v3 (x86-64-v3: AVX2, FMA) and
                      _correlate_v4 (x86-64-v4: AVX-512), of which
                      cconv._build imports the best one the CPU supports
  cconv._conv2d_direct the 4-D layer's blocked direct convolutions; twins
                      _conv2d_direct_v3 and _conv2d_direct_v4 as for _correlate
  cconv._match_cy     template matching's window sums and scores

Only the direct loops get per-ISA twins: the others are bound by memory.
Never ``-march=native``: a wheel must run on any x86-64 CPU.

Environment switches for a source build:
  CCONV_NO_OPENMP=1       build without OpenMP (the loops run on one thread)
  CCONV_BASELINE_ONLY=1   build only the baseline direct loops
  CCONV_DEBUG=1           bounds and initialisation checks on in every loop
                          (an IndexError instead of a silent bad access), -O1
"""

import os
import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CCONV_DEBUG") == "1"
openmp = [] if os.environ.get("CCONV_NO_OPENMP") == "1" else ["-fopenmp"]
optimise = ["-O1", "-g"] if DEBUG else ["-O3"]

# The compiler directives of every module, in one place.
directives = {
    "language_level": 3,
    "embedsignature": True,
    # No __test__ dict of docstring examples: no doctest reads one, and
    # stubtest would find it missing from the .pyi stubs.
    "autotestdict": False,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
}


# The direct loops are small inline functions called with constant block
# sizes; only inlined into their callers do they become fully unrolled
# register blocks (GCC otherwise keeps some out of line, with their
# accumulators in memory: 4-10x slower).
FORCE_INLINE = [("CYTHON_INLINE", "inline __attribute__((always_inline))")]


def extension(name, isa=(), macros=()):
    # -fno-math-errno: sqrt compiles to one instruction (cconv never reads errno).
    flags = [*optimise, "-fno-math-errno", *isa, *openmp]
    return Extension(
        f"cconv.{name}",
        [f"cconv/{name}.pyx"],
        depends=["cconv/_fused.pxd", "cconv/_build_info.pxi", "cconv/_correlate.pxi",
                 "cconv/_conv2d_direct.pxi", "cconv/_conv2d_kernels.h"],
        extra_compile_args=flags,
        extra_link_args=openmp,
        # Recorded in the module, for cconv.show_config().
        define_macros=[("CCONV_CFLAGS", '"' + " ".join(flags) + '"'), *macros],
    )


extensions = [extension("_runtime"), extension("_correlate", macros=FORCE_INLINE), extension("_conv2d_direct"),
              extension("_match_cy")]
if platform.machine().lower() in ("x86_64", "amd64") and os.environ.get("CCONV_BASELINE_ONLY") != "1":
    extensions += [extension("_correlate_v3", ["-march=x86-64-v3"], FORCE_INLINE),
                   extension("_correlate_v4", ["-march=x86-64-v4"], FORCE_INLINE),
                   extension("_conv2d_direct_v3", ["-march=x86-64-v3"]),
                   extension("_conv2d_direct_v4", ["-march=x86-64-v4"])]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
