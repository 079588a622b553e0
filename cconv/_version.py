"""The one place cconv's version is written (read by pyproject.toml too)."""

__version__ = "0.2.0"
