"""Type stubs of cconv._kernels_v4: the same loops as cconv._kernels."""

from ._kernels import *
