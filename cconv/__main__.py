"""``python -m cconv [--version] [--config]``: what this installation is."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._config import show_config
from ._version import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cconv", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version")
    parser.add_argument("--config", action="store_true", help="print the build and thread configuration")
    args = parser.parse_args(argv)
    if args.version or not args.config:
        print(f"cconv {__version__}")
    if args.config:
        show_config()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
