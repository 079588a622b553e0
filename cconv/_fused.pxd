# The floating types cconv's compiled loops are specialised for, declared
# once for every kernel module (``from cconv._fused cimport real``).

ctypedef fused real:
    float
    double
