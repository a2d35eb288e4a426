"""Errors that vpsbench reports to its users as one clear line."""

from __future__ import annotations

from pathlib import Path


class VpsbenchError(Exception):
    """Base class of every error vpsbench raises on purpose; its text is one line for the user."""


class InputError(VpsbenchError):
    """A file (or other input) is missing, unreadable or inconsistent.

    The message always names the offending file first, so a user can find it at once:
    ``preds/0002/000010.png: shape (375, 1241) does not match the ground truth (375, 1242)``.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        """Pickle as (path, problem), so the error crosses to and from worker processes."""
        return (type(self), (self.path, self.problem))
