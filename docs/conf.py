"""Sphinx configuration of cconv's documentation.

Build (from the repository root, with ``pip install ".[docs]"`` done)::

    python -m sphinx -W -b html docs docs/_dispatch/html

Warnings are errors.  The API pages are generated from the docstrings
(autosummary, numpydoc); the gallery's scripts in ``examples/`` are run by
sphinx-gallery at every build, so an example that breaks fails the build.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Document the installed cconv, never the source checkout: ``python -m
# sphinx`` run from the repository root puts the working directory ('') on
# sys.path first, and the checkout has no compiled modules (an editable
# install maps to it anyway).
sys.path[:] = [p for p in sys.path if p not in ("", os.curdir) and Path(p).resolve() != ROOT]
sys.path.insert(0, str(DOCS / "sphinxext"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import cconv  # noqa: E402

project = "cconv"
author = "The cconv developers"
copyright = "the cconv developers"
version = release = cconv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

# Files written below and included by the pages, not pages themselves.
exclude_patterns = ["_dispatch", "**.ipynb_checkpoints", "user_guide/_bench_results.rst", "api/_dtypes.rst",
                    "api/_dtype_refusals.rst"]
templates_path = ["_templates"]
default_role = "code"  # `x` is code, as in the docstrings
pygments_style = "sphinx"

# --- API reference: autosummary pages from the docstrings ---------------------
autosummary_generate = True
autosummary_imported_members = True
# The numpydoc docstrings say the types; the annotations (ArrayLike unions)
# would only repeat them at great length in every signature.
autodoc_typehints = "none"
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- the gallery: examples/*.py, executed at every build ----------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every plot_*.py is executed
    "within_subsection_order": "gallery_order.GalleryOrder",
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "download_all_examples": False,
    "min_reported_time": 1,
    "show_memory": False,
    "capture_repr": ("_repr_html_", "__repr__"),
}

# --- figures drawn by code in the pages (.. plot::) ---------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": True}

# --- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"cconv {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "github_url": "https://github.com/cconv-dev/cconv",
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "install": []}


# --- benchmark tables: bench.py's markdown output as RST ----------------------
def _bench_tables_to_rst(source: Path, target: Path) -> None:
    """Write the tables ``benchmarks/bench.py`` printed (markdown) as RST.

    Headings ``### title`` become rubrics, pipe tables become list-tables,
    code fences literal blocks and other lines paragraphs; ``target`` is
    included by the performance page.
    """
    lines = source.read_text().splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append("   " + lines[i])
                i += 1
            out += [".. code-block:: text", "", *block, ""]
        elif line.startswith("### "):
            out += [f".. rubric:: {line[4:]}", ""]
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r"-+", c) for c in cells):
                    rows.append(cells)
                i += 1
            out += [".. list-table::", "   :header-rows: 1", ""]
            for row in rows:
                out.append("   * - " + (row[0] or r"\ "))
                out += ["     - " + (c.replace("**", "") or r"\ ") for c in row[1:]]
            out.append("")
            continue
        elif line.strip():
            out += [line, ""]
        i += 1
    target.write_text("\n".join(out) + "\n")


_bench_tables_to_rst(DOCS / "user_guide" / "bench_results.md", DOCS / "user_guide" / "_bench_results.rst")


# --- the dtype tables, from calls of the installed cconv ------------------------
def _dtype_tables(target: Path, refusals: Path) -> None:
    """Write the dtype each pair of input dtypes computes in, and the refusals.

    The tables are what ``cconv.conv_forward`` returns and raises at build
    time, so they cannot drift from the code.
    """
    import numpy as np

    groups = {"bool": ["bool"], "any integer": [f"{u}int{b}" for u in ("", "u") for b in (8, 16, 32, 64)],
              "float16": ["float16"], "float32": ["float32"], "float64": ["float64"]}
    x = np.ones((1, 3, 3))
    lines = [".. list-table::", "   :header-rows: 1", "   :stub-columns: 1", "",
             "   * - ``x`` \\\\ ``w``"] + [f"     - {g}" for g in groups]
    for row, xs in groups.items():
        lines.append(f"   * - {row}")
        for ws in groups.values():
            got = {cconv.conv_forward(x.astype(a), np.ones((2, 2), dtype=b))[0].dtype.name for a in xs for b in ws}
            lines.append(f"     - {' or '.join(sorted(got))}")
    target.write_text("\n".join(lines) + "\n")
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - dtype of ``x``", "     - raises"]
    refused = [("complex64, complex128", np.ones((1, 3, 3), np.complex128)),
               ("long double (float128)", np.ones((1, 3, 3), np.longdouble)),
               ("object", np.ones((1, 3, 3), object)),
               ("strings", np.full((1, 3, 3), "a")),
               ("datetime64", np.ones((1, 3, 3), "datetime64[s]")),
               ("structured", np.ones((1, 3, 3), [("a", "f8")])),
               ("a masked array", np.ma.masked_array(np.ones((1, 3, 3))))]
    for label, arr in refused:
        try:
            cconv.conv_forward(arr, np.ones((2, 2)))
        except Exception as exc:  # the table shows whatever is raised
            message = str(exc).replace("*", "\\*")
            lines += [f"   * - {label}", f"     - ``{type(exc).__name__}``: {message}"]
        else:
            lines += [f"   * - {label}", "     - (accepted)"]
    refusals.write_text("\n".join(lines) + "\n")


_dtype_tables(DOCS / "api" / "_dtypes.rst", DOCS / "api" / "_dtype_refusals.rst")
