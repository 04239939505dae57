"""The header of a ``.npy`` array, read without trusting it: shape, memory order and dtype.

Model files, checkpoints and ``predict``'s ``.npy`` inputs all start an array this way and
then check the header against what they expect before reading a byte of values.
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np

#: Readers of the header by format version (3.0 only differs by allowing a UTF-8 header).
READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    (3, 0): np.lib.format.read_array_header_2_0,
}
MAX_HEADER = 10_000  # characters: far above any real header


def read_npy_header(f: IO[bytes], where: str, *, error: type[Exception] = ValueError
                    ) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``f``'s position; ``error`` naming ``where``.

    The stream is left at the first byte of the values.
    """
    try:
        version = np.lib.format.read_magic(f)
        reader = READERS.get(version)
        if reader is None:
            raise error(f"{where}: the .npy format version must be 1.0, 2.0 or 3.0. Got {version} instead.")
        shape, fortran, dtype = reader(f, max_header_size=MAX_HEADER)
    except error:
        raise
    except Exception as exc:
        # NOTE: NumPy parses the header with ast and, for legacy headers, tokenize: junk raises
        # ValueError, SyntaxError, TypeError, tokenize.TokenError... any of them means "not a .npy file".
        raise error(f"{where}: not a readable .npy file ({exc}); save it with numpy.save.") from exc
    return tuple(shape), bool(fortran), np.dtype(dtype)
