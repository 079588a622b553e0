"""Hypothesis fuzz of every public function, one module per public module.

``strategies.py`` draws the inputs, ``oracle.py`` works out from the
specification what each call may do; ``CCONV_FUZZ_EXAMPLES`` sets the
examples per test (default 40; 500 for a long run).
"""
