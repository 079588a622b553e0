"""Type stubs of cconv._exact_v4: the sums of cconv._exact."""

from ._exact import build_info as build_info
from ._exact import correlate_exact as correlate_exact
from ._exact import correlate_ordered as correlate_ordered
from ._exact import correlate_paired as correlate_paired
