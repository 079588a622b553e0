# What a compiled module was built with, for cconv.show_config().  Included
# by each module whose flags can differ: the runtime module (the baseline
# flags) and each build of the direct loops.

cdef extern from *:
    """
    /* setup.py defines CCONV_CFLAGS. */
    #ifndef CCONV_CFLAGS
    #define CCONV_CFLAGS "unknown"
    #endif
    #if defined(__clang__)
    #define CCONV_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define CCONV_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define CCONV_COMPILER_STR2(v) #v
    #define CCONV_COMPILER_STR(v) CCONV_COMPILER_STR2(v)
    #define CCONV_COMPILER "msvc " CCONV_COMPILER_STR(_MSC_VER)
    #else
    #define CCONV_COMPILER "unknown compiler"
    #endif
    """
    const char* CCONV_CFLAGS
    const char* CCONV_COMPILER


def build_info():
    """``(compiler, flags)`` this module was compiled with."""
    return CCONV_COMPILER.decode().strip(), CCONV_CFLAGS.decode()
