"""Type stubs of cconv._kernels_v3: the same loops as cconv._kernels."""

from ._kernels import *
