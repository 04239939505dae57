"""One declaration per setting: its default, the values it accepts and its help text.

A setting is a dataclass field declared with :func:`setting`. Everything that offers the
setting reads that one declaration: the command line builds its flag from it (type,
default, help, choices), the estimator its parameter and docstring, the sweep file its key
and check, and the dataclass's ``__post_init__`` validates through it. Adding a setting is
one declaration plus its use.

A :class:`Rule` says which values a setting accepts. It has one ``check`` for Python values
(the library, the estimator, a sweep file) and one ``parse`` for command-line text; both
raise ``ValueError`` with a message that names the setting.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ByteSize", "Choice", "Coefficients", "Column", "Flag", "Integer", "Real", "Rule", "Setting", "Sizes",
           "Text", "applies", "declared", "setting", "shown", "validate"]


class Rule:
    """The values a setting accepts; subclasses say which."""

    def check(self, name: str, value: Any) -> Any:
        """``value`` in its canonical form, or ``ValueError`` naming ``name``."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value that the command-line text ``text`` stands for (unchecked)."""
        return text

    def describe(self) -> str:
        """What the rule accepts, in a few words (for docstrings and errors)."""
        raise NotImplementedError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer(Rule):
    """A whole number in ``[low, high]``; ``optional`` also admits None (the setting is off)."""

    low: int | None = None
    high: int | None = None
    optional: bool = False

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not _is_int(value) or not self._in_range(int(value)):
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return int(value)

    def _in_range(self, value: int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def parse(self, text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer. Got {text!r}.") from None

    def describe(self) -> str:
        bounds = [f">= {self.low}" if self.low is not None else "", f"<= {self.high}" if self.high is not None else ""]
        text = " and ".join(b for b in bounds if b)
        return f"an integer {text}".rstrip() + (" or None" if self.optional else "")


@dataclass(frozen=True)
class Real(Rule):
    """A finite number between ``low`` and ``high``, each bound closed unless said open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, name: str, value: Any) -> Any:
        if not _is_real(value) or not math.isfinite(value) or not self._in_range(float(value)):
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return float(value)

    def _in_range(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return above and below

    def parse(self, text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number. Got {text!r}.") from None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"a number in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"a finite number {'<' if self.high_open else '<='} {self.high:g}"
        return "a finite number"


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed set of names (a registry's keys)."""

    options: Collection[str]

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise ValueError(f"{name} must be one of {', '.join(sorted(self.options))}. Got {value!r} instead.")
        return value

    def describe(self) -> str:
        return "{" + ", ".join(repr(o) for o in sorted(self.options)) + "}"


@dataclass(frozen=True)
class Sizes(Rule):
    """Layer sizes: one integer >= 1, or a non-empty sequence of them (``"256,128"`` on the command line)."""

    def check(self, name: str, value: Any) -> Any:
        values = [value] if _is_int(value) else value
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values \
                or not all(_is_int(v) and v >= 1 for v in values):
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return [int(v) for v in values]

    def parse(self, text: str) -> Any:
        try:
            return [int(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"expected integers separated by commas, like 256,128. Got {text!r}.") from None

    def describe(self) -> str:
        return "an integer >= 1 or a non-empty list of them"


@dataclass(frozen=True)
class Coefficients(Rule):
    """Penalty coefficients: one finite number >= 0, or one per weight matrix (``"1e-3,0"``).

    ``below``: an exclusive upper bound (1 for dropout rates); ``per``: what the list has one value per.
    """

    below: float | None = None
    per: str = "weight matrix"

    def check(self, name: str, value: Any) -> Any:
        if self._ok(value):
            return float(value)
        ok = (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0
              and all(self._ok(v) for v in value))
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return [float(v) for v in value]

    def _ok(self, v: Any) -> bool:
        return _is_real(v) and math.isfinite(v) and v >= 0 and (self.below is None or v < self.below)

    def parse(self, text: str) -> Any:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"expected numbers separated by commas, like 1e-3,0. Got {text!r}.") from None
        return values[0] if len(values) == 1 else values

    def describe(self) -> str:
        one = "a finite number >= 0" if self.below is None else f"a number in [0, {self.below:g})"
        return f"{one}, or a list of them (one per {self.per})"


@dataclass(frozen=True)
class Text(Rule):
    """Any string; ``optional`` also admits None."""

    optional: bool = False

    def check(self, name: str, value: Any) -> Any:
        if (value is None and self.optional) or isinstance(value, str):
            return value
        raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")

    def describe(self) -> str:
        return "a string" + (" or None" if self.optional else "")


@dataclass(frozen=True)
class Flag(Rule):
    """On or off (a ``--name`` switch on the command line)."""

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return value

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Column(Rule):
    """A table's column: a 0-based index (negative from the end), ``first``, ``last`` or a header name."""

    def check(self, name: str, value: Any) -> Any:
        if _is_int(value):
            return int(value)
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")

    def parse(self, text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            return text

    def describe(self) -> str:
        return "a column: a header name, a 0-based index (negative from the end), first or last"


#: Units of :class:`ByteSize` (powers of 1024).
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class ByteSize(Rule):
    """A number of bytes >= ``low``, written ``600M``, ``2G``, ``1.5GiB`` or in bytes; None when off."""

    low: int = 1

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            size = self.parse(value) if isinstance(value, str) else value
        except ValueError:
            size = None
        if not _is_int(size) or size < self.low:
            raise ValueError(f"{name} must be {self.describe()}. Got {value!r} instead.")
        return int(size)

    def parse(self, text: str) -> Any:
        found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
        if not found:
            raise ValueError(f"expected a size like 600M or 2G. Got {text!r}.")
        return int(float(found.group(1)) * SIZE_UNITS[found.group(2).lower()])

    def describe(self) -> str:
        return f"a size in bytes >= {self.low}, like 600M or 2G (K, M, G, T: powers of 1024), or None"


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting, kept in its dataclass field's metadata.

    Attributes
    ----------
    rule : Rule
        The values it accepts.
    help : str
        One line for ``--help`` and docstrings (no default: that is added from the field).
    metavar : str, optional
        The placeholder in ``--help`` (``ETA`` for ``--lr ETA``).
    applies : callable, optional
        Given the other settings as a mapping, whether this one has any effect (the step
        schedule's knobs only matter with ``lr_schedule = "step"``). Shown settings skip it
        otherwise.
    log_scale : bool
        Best seen on a log axis (learning rates, penalties).
    """

    rule: Rule
    help: str
    metavar: str | None = None
    applies: Callable[[Mapping[str, Any]], bool] | None = None
    log_scale: bool = False


def shown(value: Any) -> str:
    """A setting's value as the command line writes it: ``10,5``, ``0.001``, ``none``."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(shown, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def setting(default: Any, rule: Rule, help: str, **options: Any) -> Any:
    """A dataclass field holding a :class:`Setting` declaration (``options`` are its other attributes)."""
    return field(default=default, metadata={"setting": Setting(rule, help, **options)})


def declared(cls: type) -> dict[str, tuple[Setting, Any]]:
    """The settings a dataclass declares, in order: name -> (declaration, default)."""
    found: dict[str, tuple[Setting, Any]] = {}
    for f in fields(cls):
        if "setting" in f.metadata:
            found[f.name] = (f.metadata["setting"], f.default)
    return found


def validate(obj: Any) -> None:
    """Check every declared setting of the dataclass instance ``obj``, storing each canonical value."""
    for name, (decl, _) in declared(type(obj)).items():
        object.__setattr__(obj, name, decl.rule.check(name, getattr(obj, name)))


def applies(name: str, decl: Setting, values: Mapping[str, Any]) -> bool:
    """Whether setting ``name`` has an effect given all the ``values`` (see :attr:`Setting.applies`)."""
    return decl.applies is None or bool(decl.applies(values))
