"""Type stubs of cconv._correlate_v4: the loops of cconv._correlate."""

from ._correlate import backward_fused as backward_fused
from ._correlate import build_info as build_info
from ._correlate import correlate_narrow as correlate_narrow
from ._correlate import correlate_wide as correlate_wide
from ._correlate import filter_rows as filter_rows
