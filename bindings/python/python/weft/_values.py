"""Values across the boundary: Python values to SQLite parameters and query cells back."""

from __future__ import annotations

import collections.abc
from typing import Any, List, Optional, Sequence, Tuple, Union

from ._native import weft_ffi as _ffi

#: What a parameter or a cell can be: SQLite's five storage classes as Python values
#: (``bool`` is stored as the integer 0 or 1).
Value = Union[None, int, float, str, bytes]

#: Statement parameters: a sequence of values bound to the ``?`` placeholders in order.
Params = Optional[Sequence[Any]]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

_NULL = _ffi.SqlValue.NULL()
_INTEGER = _ffi.SqlValue.INTEGER
_REAL = _ffi.SqlValue.REAL
_TEXT = _ffi.SqlValue.TEXT
_BLOB = _ffi.SqlValue.BLOB
_NULL_TYPE = type(_NULL)


class Rows(List[Tuple[Value, ...]]):
    """A query's rows, each a tuple of Python values; ``columns`` names the columns.

    It is a plain ``list`` otherwise: ``rows == [("a1", "milk", 0)]`` holds.
    """

    __slots__ = ("columns",)

    def __init__(self, rows: List[Tuple[Value, ...]], columns: Sequence[str]) -> None:
        super().__init__(rows)
        #: The result's column names, in order.
        self.columns: Tuple[str, ...] = tuple(columns)


def to_sql(value: Any) -> "_ffi.SqlValue":
    """The SQLite value of ``value``; ``TypeError`` for a type SQLite cannot store."""
    kind = type(value)
    if kind is str:
        return _TEXT(value)
    if kind is int:
        return _integer(value)
    if value is None:
        return _NULL
    if kind is float:
        return _REAL(value)
    if kind is bool:
        return _INTEGER(int(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _BLOB(bytes(value))
    # Subclasses (an IntEnum, a str subclass) bind as their base type.
    if isinstance(value, bool):
        return _INTEGER(int(value))
    if isinstance(value, int):
        return _integer(int(value))
    if isinstance(value, float):
        return _REAL(float(value))
    if isinstance(value, str):
        return _TEXT(str(value))
    raise TypeError(
        f"weft cannot bind a value of type {kind.__name__}: "
        "use None, int, float, str, bytes or bool"
    )


def _integer(value: int) -> "_ffi.SqlValue":
    if not _I64_MIN <= value <= _I64_MAX:
        raise OverflowError(f"{value} does not fit SQLite's 64-bit integers")
    return _INTEGER(value)


def to_params(params: Params) -> List["_ffi.SqlValue"]:
    """The statement parameters ``params`` (``None`` for none) as SQLite values."""
    if params is None:
        return []
    kind = type(params)
    if kind is list or kind is tuple:
        return [to_sql(value) for value in params]
    if isinstance(params, (str, bytes, bytearray, dict)) or not isinstance(
        params, collections.abc.Sequence
    ):
        raise TypeError(
            "params must be a list or tuple of values for the ? placeholders, "
            f"not {type(params).__name__}"
        )
    return [to_sql(value) for value in params]


def from_sql(value: "_ffi.SqlValue") -> Value:
    """The Python value of one SQLite value."""
    if type(value) is _NULL_TYPE:
        return None
    return value.value  # type: ignore[attr-defined, no-any-return]


def to_rows(result: "_ffi.QueryResult") -> Rows:
    """A query result as :class:`Rows` of tuples."""
    null = _NULL_TYPE
    rows = [
        tuple(None if type(cell) is null else cell.value for cell in row) for row in result.rows
    ]
    return Rows(rows, result.columns)
