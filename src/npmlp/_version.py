"""The one place npmlp's version is written (the package metadata reads it too)."""

import importlib.metadata

__version__ = "0.1.0"


def installed_version(package: str) -> str | None:
    """``package``'s installed version from its metadata (nothing imported), or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
