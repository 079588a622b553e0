# What a compiled module was built with, for cconv.show_config().  Included
# by each module whose flags can differ: the runtime module (the baseline
# flags) and each build of the direct loops.

cdef extern from "build_info.h":
    const char* CCONV_CFLAGS
    const char* CCONV_COMPILER


def build_info():
    """``(compiler, flags)`` this module was compiled with."""
    return CCONV_COMPILER.decode().strip(), CCONV_CFLAGS.decode()
