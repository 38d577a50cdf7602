"""Errors that name what is wrong: the source (file), the row and the field."""

from __future__ import annotations


class DismaiError(Exception):
    """Base class of every error this package raises on purpose."""


class StructureError(DismaiError, ValueError):
    """A structure row (or file) is invalid.

    The message always says where: ``file``, ``row`` (id and/or index) and ``field``.
    """

    def __init__(self, message: str, *, field: str | None = None, row: str | int | None = None,
                 index: int | None = None, source: str | None = None):
        self.field = field
        self.row = row
        self.index = index
        self.source = source
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source is not None:
            where.append(f"file {self.source!s}")
        if self.row is not None and self.index is not None:
            where.append(f"row {self.row!r} (index {self.index})")
        elif self.row is not None:
            where.append(f"row {self.row!r}")
        elif self.index is not None:
            where.append(f"row index {self.index}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return (", ".join(where) + ": " if where else "") + self.reason

    def located(self, *, row=None, index=None, source=None) -> "StructureError":
        """Return a copy of this error with the missing location filled in."""
        return StructureError(
            self.reason,
            field=self.field,
            row=self.row if self.row is not None else row,
            index=self.index if self.index is not None else index,
            source=self.source if self.source is not None else source,
        )
