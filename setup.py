"""Build of cconv's compiled extensions; all metadata lives in pyproject.toml.

One source, ``cconv/_kernels.pxi``, is compiled into a baseline module that
runs on any CPU and, on x86-64, into twins for the x86-64-v3 (AVX2, FMA) and
x86-64-v4 (AVX-512) instruction sets; ``cconv._engine`` imports the best one
the running CPU supports.  Never ``-march=native``: a wheel must run on any
x86-64 machine.

Environment switches for a source build:
  CCONV_NO_OPENMP=1       build without OpenMP (the loops run on one thread)
  CCONV_BASELINE_ONLY=1   build only the baseline module
"""

import os
import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

openmp = [] if os.environ.get("CCONV_NO_OPENMP") == "1" else ["-fopenmp"]
variants = {"_kernels": []}
if platform.machine().lower() in ("x86_64", "amd64") and os.environ.get("CCONV_BASELINE_ONLY") != "1":
    variants["_kernels_v3"] = ["-march=x86-64-v3"]
    variants["_kernels_v4"] = ["-march=x86-64-v4"]


def extension(name, isa):
    # -fno-math-errno: sqrt compiles to one instruction (cconv never reads errno).
    flags = ["-O3", "-fno-math-errno", *isa, *openmp]
    return Extension(
        f"cconv.{name}",
        [f"cconv/{name}.pyx"],
        depends=["cconv/_kernels.pxi"],
        extra_compile_args=flags,
        extra_link_args=openmp,
        # Recorded in the module, for cconv.show_config().
        define_macros=[("CCONV_CFLAGS", '"' + " ".join(flags) + '"')],
    )


extensions = [extension(name, isa) for name, isa in variants.items()]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    ),
)
