"""The one place npmlp's version is written (the package metadata reads it too)."""

__version__ = "0.1.0"
