"""Build of cconv's compiled extensions; all metadata lives in pyproject.toml.

The compiled modules, one per family of loops:

  cconv._runtime      OpenMP and CPU queries (baseline flags)
  cconv._correlate    the direct loops of the 3-D engine; on x86-64 also
                      compiled as _correlate_v3 (x86-64-v3: AVX2, FMA) and
                      _correlate_v4 (x86-64-v4: AVX-512), of which
                      cconv._dispatch imports the best one the CPU supports
  cconv._conv2d_direct the 4-D layer's blocked direct convolutions; twins
                      _conv2d_direct_v3 and _conv2d_direct_v4 as for _correlate
  cconv._match_cy     template matching's window sums and scores
  cconv._exact        sums whose every rounding is SciPy's (integers, long
                      double, double sums in SciPy's order), compiled with
                      floating-point contraction off; twins as for _correlate

Only the direct loops get per-ISA twins (the table ``ISA_TWINS``): the others
are bound by memory.  Never ``-march=native``: a wheel must run on any x86-64
CPU.

The flags are not fixed: ``ProbingBuildExt`` asks the compiler in use what it
accepts, by compiling (and linking) small probe programs, and builds what it
can (``FLAGS`` has the candidates of each compiler type):

  OpenMP      the first candidate that compiles and links an OpenMP program
              (-fopenmp; Apple clang's -Xpreprocessor -fopenmp -lomp; MSVC's
              /openmp); none: a serial build, with a warning, and
              cconv.show_config() saying so
  ISA twins   built only when the compiler targets x86-64 and accepts the
              level's flag (-march=x86-64-v3/-v4; MSVC /arch:AVX2, AVX512),
              checked by the macros it defines; else left out, with a note
  CPU query   GCC >= 12's __builtin_cpu_supports("x86-64-v3"), where the
              compiler has it; else CPUID (cconv/_runtime.pyx)

Environment switches for a source build (overrides of what the probes find):
  CCONV_NO_OPENMP=1       build without OpenMP (the loops run on one thread)
  CCONV_BASELINE_ONLY=1   build only the baseline direct loops
  CCONV_DEBUG=1           bounds and initialisation checks on in every loop
                          (an IndexError instead of a silent bad access), -O1
"""

import contextlib
import glob
import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext  # Cython's build_ext, Cython being installed

DEBUG = os.environ.get("CCONV_DEBUG") == "1"
NO_OPENMP = os.environ.get("CCONV_NO_OPENMP") == "1"
BASELINE_ONLY = os.environ.get("CCONV_BASELINE_ONLY") == "1"

# The compiled modules, cconv/<name>.pyx each.
MODULES = ("_runtime", "_correlate", "_conv2d_direct", "_match_cy", "_exact")

# Which families get per-ISA twins, and which.  A twin is its own file,
# cconv/<family>_<level>.pyx (with its .pyi), that includes the family's
# loops, cconv/<family>.pxi, as cconv/<family>.pyx does;
# cconv._dispatch.load("<family>") imports the best one the CPU runs.
ISA_TWINS = {"_correlate": ("v3", "v4"), "_conv2d_direct": ("v3", "v4"), "_exact": ("v3", "v4")}

# The 3-D engine's loops are small inline functions called with constant
# block sizes; only inlined into their callers do they become fully unrolled
# register blocks (GCC otherwise keeps some out of line, with their
# accumulators in memory: 4-10x slower).  So Cython's inline is a forced one
# there, in each compiler's spelling.
FORCE_INLINE_FAMILIES = ("_correlate", "_exact")

# Families whose sums must round exactly as SciPy's do: compiled without
# floating-point contraction, so that no multiply and add become one FMA
# (whose single rounding differs from SciPy's two), on every ISA build.
NO_CONTRACTION_FAMILIES = ("_exact",)

# The compiler directives of every module, in one place.
DIRECTIVES = {
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

# Candidate flags by compiler type ("unix": GCC, clang, Apple clang, icx and
# MinGW alike; "msvc").  "optional" flags are kept where accepted; "openmp"
# is tried in order, (compile flags, link flags); each ISA level has its
# flags and the macros by which the compiler shows it applied them.
FLAGS = {
    "unix": {
        "optimise": ["-O1", "-g"] if DEBUG else ["-O3"],
        # sqrt compiles to one instruction (cconv never reads errno).
        "optional": ["-fno-math-errno"],
        "openmp": [(["-fopenmp"], ["-fopenmp"]),
                   (["-Xpreprocessor", "-fopenmp"], ["-lomp"])],
        "isa": {"v3": ["-march=x86-64-v3"], "v4": ["-march=x86-64-v4"]},
        "strict": ["-Werror"],
        "force_inline": "inline __attribute__((always_inline))",
        # No fused multiply-adds: a family whose sums must round as SciPy's.
        "no_contraction": ["-ffp-contract=off"],
    },
    "msvc": {
        "optimise": ["/Od", "/Zi"] if DEBUG else ["/O2"],
        "optional": [],
        "openmp": [(["/openmp"], [])],
        "isa": {"v3": ["/arch:AVX2"], "v4": ["/arch:AVX512"]},
        "strict": ["/WX"],
        "force_inline": "__forceinline",
        # /fp:precise contracts nothing unless /fp:contract is given (VS 2022).
        "no_contraction": ["/fp:precise"],
    },
}
ISA_MACROS = {
    "v3": ["__AVX2__", "__FMA__", "__BMI2__"],
    "v4": ["__AVX512F__", "__AVX512BW__", "__AVX512CD__", "__AVX512DQ__", "__AVX512VL__"],
}
# MSVC defines no __FMA__ or __BMI2__; /arch:AVX2 implies both.
MSVC_ISA_MACROS = {"v3": ["__AVX2__"], "v4": ISA_MACROS["v4"]}

PROBE_X86_64 = """
#if !(defined(__x86_64__) || defined(_M_X64)) || defined(_M_ARM64EC)
#error not a compiler for x86-64
#endif
"""

PROBE_OPENMP = """
#include <omp.h>
#ifndef _OPENMP
#error no OpenMP
#endif
int main(void) {
    int i, s = 0;
#pragma omp parallel for reduction(+:s)
    for (i = 0; i < 8; i++) s += i;
    return (s == 28 && omp_get_max_threads() > 0) ? 0 : 1;
}
"""

PROBE_CPU_LEVEL_BUILTIN = PROBE_X86_64 + """
int main(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3") + __builtin_cpu_supports("x86-64-v4");
}
"""


# What every module may include or cimport: the shared declarations, the C
# headers (cconv/src) and each twinned family's loops.
DEPENDS = (["cconv/_fused.pxd", "cconv/_build_info.pxi"] + sorted(glob.glob("cconv/src/*.h"))
           + [f"cconv/{f}.pxi" for f in ISA_TWINS])

# Where the compiled modules' C headers are (cconv/src/*.h).
INCLUDE_DIRS = ["cconv/src"]

# The ISA level of each twin, by its full name.
TWIN_LEVEL = {f"cconv.{family}_{level}": level
              for family, levels in ISA_TWINS.items() for level in levels}


def modules():
    """The extensions: each module and each ISA twin, from its .pyx.

    build_ext cythonizes each one it builds (and only those), with DIRECTIVES.
    """
    found = []
    for name in [f"cconv.{name}" for name in MODULES] + list(TWIN_LEVEL):
        ext = Extension(name, [name.replace(".", "/") + ".pyx"], depends=DEPENDS, include_dirs=INCLUDE_DIRS)
        ext.cython_directives = DIRECTIVES
        found.append(ext)
    return found


@contextlib.contextmanager
def quiet():
    """Silence the compiler's stdout and stderr (a failed probe is expected)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def note(message):
    print(f"cconv build: {message}", file=sys.stderr, flush=True)


class ProbingBuildExt(build_ext):
    """``build_ext`` that picks the flags the compiler in use accepts.

    Runs the probes once, sets each extension's flags and leaves out the ISA
    twins the compiler cannot build; Cython's build_ext (which setuptools'
    is, where Cython is installed) then cythonizes and compiles each one.
    Extensions are built in parallel, on every core, unless ``-j`` says
    otherwise.
    """

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def probe(self, code, compile_args, link_args=None):
        """Whether ``code`` compiles with ``compile_args`` (and links with ``link_args``)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(code)
            try:
                with quiet():
                    objects = self.compiler.compile([src], output_dir=tmp,
                                                    extra_postargs=self.strict + compile_args)
                    if link_args is not None:
                        self.compiler.link_executable(objects, "probe", output_dir=tmp,
                                                      extra_postargs=link_args)
            except Exception:  # CompileError, LinkError, or a compiler that is not there
                return False
        return True

    def plan(self):
        """``(compile flags, link flags, macros, ISA flags by level)`` for this compiler."""
        kind = "msvc" if self.compiler.compiler_type == "msvc" else "unix"
        flags = FLAGS[kind]
        self.force_inline = flags["force_inline"]
        self.no_contraction = flags["no_contraction"]
        self.strict = flags["strict"]
        cflags = list(flags["optimise"])
        cflags += [f for f in flags["optional"] if self.probe("int main(void) { return 0; }\n", [f])]
        lflags, macros = [], []
        note(f"compiler type {kind!r}: {self.compiler.compiler_so if kind == 'unix' else 'cl'}")

        openmp = "off: CCONV_NO_OPENMP=1" if NO_OPENMP else None
        if not NO_OPENMP:
            for compile_args, link_args in flags["openmp"]:
                if self.probe(PROBE_OPENMP, compile_args, link_args):
                    cflags += compile_args
                    lflags += link_args
                    note(f"OpenMP: compile {' '.join(compile_args)}, link {' '.join(link_args)}")
                    break
            else:
                openmp = "off: the compiler did not build an OpenMP program"
                note("WARNING: the compiler builds no OpenMP program: cconv's loops will "
                     "run on one thread (see cconv.show_config())")
        macros.append(("CCONV_OPENMP_NOTE", f'"{openmp or "on"}"'))

        x86_64 = self.probe(PROBE_X86_64 + "int main(void) { return 0; }\n", [])
        query = "none (not x86-64: the baseline loops only)"
        if x86_64:
            query = "CPUID"
            if self.probe(PROBE_CPU_LEVEL_BUILTIN, [], []):
                macros.append(("CCONV_HAVE_CPU_LEVEL_BUILTIN", "1"))
                query = '__builtin_cpu_supports("x86-64-v3"/"x86-64-v4")'
        note(f"CPU query: {query}")

        isa = {}
        if BASELINE_ONLY:
            note("ISA twins: none (CCONV_BASELINE_ONLY=1)")
        elif not x86_64:
            note("ISA twins: none (the compiler does not target x86-64)")
        else:
            needs = MSVC_ISA_MACROS if kind == "msvc" else ISA_MACROS
            for level, level_flags in flags["isa"].items():
                checks = "".join(f"#ifndef {m}\n#error {level_flags} did not enable {m}\n#endif\n"
                                 for m in needs[level])
                if self.probe(PROBE_X86_64 + checks + "int main(void) { return 0; }\n", level_flags):
                    isa[level] = level_flags
                else:
                    note(f"ISA twins: the compiler does not accept {' '.join(level_flags)}: "
                         f"no {level} build")
            note(f"ISA twins: {', '.join(isa) or 'none'}")
        return cflags, lflags, macros, isa

    def build_extensions(self):
        cflags, lflags, macros, isa = self.plan()
        kept = []
        for ext in self.extensions:
            level = TWIN_LEVEL.get(ext.name)
            if level is not None and level not in isa:
                continue
            family = ext.name.removeprefix("cconv.")
            flags = cflags + isa.get(level, [])
            if family.startswith(NO_CONTRACTION_FAMILIES):
                flags = flags + self.no_contraction
            ext.extra_compile_args = flags
            ext.extra_link_args = lflags
            # Recorded in the module, for cconv.show_config().
            ext.define_macros = macros + [("CCONV_CFLAGS", '"' + " ".join(flags) + '"')]
            if family.startswith(FORCE_INLINE_FAMILIES):
                ext.define_macros.append(("CYTHON_INLINE", self.force_inline))
            kept.append(ext)
        self.extensions[:] = kept
        super().build_extensions()


setup(ext_modules=modules(), cmdclass={"build_ext": ProbingBuildExt})
