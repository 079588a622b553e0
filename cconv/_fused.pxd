# The floating types cconv's compiled loops are specialised for, declared
# once for every kernel module (``from cconv._fused cimport real``).

ctypedef fused real:
    float
    double

# Types summed exactly as SciPy's signal module sums them: unsigned
# integers of every width (signed data is passed as the unsigned type of its
# width, whose wrap-around arithmetic gives the same bits), and long double.
ctypedef fused exact:
    unsigned char
    unsigned short
    unsigned int
    unsigned long long
    long double
