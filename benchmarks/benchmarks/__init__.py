"""cconv's asv suite: regression tracking of the public calls, commit by commit.

Run from ``benchmarks/`` (where ``asv.conf.json`` is)::

    pip install asv
    asv run                                  # main's new commits, each built in its own virtualenv
    asv continuous main HEAD                 # this branch against main; lists what got slower
    asv run -E existing --quick              # the installed cconv, each benchmark once

``python benchmarks/asv_check.py`` (no asv needed) imports these modules
and runs every benchmark once; CI does that.  Each benchmark uses only
cconv's public API, on small arrays (every call well under 0.5 s on two
cores), at cconv's default thread count (``OMP_NUM_THREADS=1 asv run``
pins it).  The side-by-side tables against the peers are ``bench.py``'s.
"""
