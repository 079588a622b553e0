"""Type stubs of cconv._conv2d_direct_v4: the loops of cconv._conv2d_direct."""

from ._conv2d_direct import blocking as blocking
from ._conv2d_direct import build_info as build_info
from ._conv2d_direct import direct_pass as direct_pass
from ._conv2d_direct import dw_dot as dw_dot
from ._conv2d_direct import dw_finish as dw_finish
from ._conv2d_direct import dw_pass as dw_pass
from ._conv2d_direct import filters_last as filters_last
from ._conv2d_direct import pack_filters as pack_filters
from ._conv2d_direct import pack_planes as pack_planes
from ._conv2d_direct import tile as tile
