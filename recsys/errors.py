"""Errors that tell the user what was expected, what was found, where, and what to do.

Every error raised on bad input is a :class:`RecsysError` subclass whose message
is built from those four parts, so messages read the same across the project.

>>> err = DataError("column 'rating' has 3 values outside the scale [1, 5]",
...                 file="ratings.csv", column="rating",
...                 hint="set dataset.rating_scale or fix the file")
>>> print(err)
ratings.csv, column 'rating': column 'rating' has 3 values outside the scale [1, 5]. What to do: set dataset.rating_scale or fix the file
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class for every error recsys raises about its inputs or settings."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        column: str | None = None,
        setting: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.column = column
        self.setting = setting
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.column:
            where.append(f"column '{self.column}'")
        if self.setting:
            where.append(f"setting '{self.setting}'")
        text = (", ".join(where) + ": " if where else "") + self.problem
        if self.hint:
            text += f". What to do: {self.hint}"
        return text

    def __reduce__(self):
        # Keep the structured fields when the error crosses a process boundary (Ray).
        return (
            _rebuild,
            (type(self), self.problem, self.file, self.column, self.setting, self.hint),
        )


def _rebuild(cls, problem, file, column, setting, hint):
    return cls(problem, file=file, column=column, setting=setting, hint=hint)


class DataError(RecsysError):
    """Input data is missing, unreadable, or does not match the expected contract."""


class ConfigError(RecsysError):
    """A setting is misspelt, has the wrong type, or asks for something impossible."""
