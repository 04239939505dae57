"""The public surface: a sorted __all__ of names that exist."""

import npmlp


def test_all_is_sorted_and_importable() -> None:
    assert npmlp.__all__ == sorted(npmlp.__all__)
    for name in npmlp.__all__:
        assert getattr(npmlp, name) is not None
