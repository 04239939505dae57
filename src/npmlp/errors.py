"""The library's own error types; the command line turns each into a one-line message."""

from __future__ import annotations


class NpmlpError(Exception):
    """Base class of every error npmlp raises on purpose."""


class DataError(NpmlpError, ValueError):
    """A data set or input file is missing, malformed or inconsistent."""


class ModelFileError(NpmlpError, ValueError):
    """A model file or checkpoint is missing, malformed, tampered with or incompatible."""


class DivergenceError(NpmlpError, ArithmeticError):
    """Training produced a non-finite loss or parameter."""


class RunDirectoryError(NpmlpError, ValueError):
    """An output directory is in use by another writer, or holds something a command will not replace."""
