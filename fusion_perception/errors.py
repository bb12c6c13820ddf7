"""Errors the toolkit raises for bad input: each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class FusionPerceptionError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class DatasetError(FusionPerceptionError):
    """A dataset file or folder is missing, unreadable or inconsistent.

    ``path`` names the offending file (or folder); ``problem`` says what is wrong.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)

    def __reduce__(self):  # picklable, so a worker process can report it to the parent
        return type(self), (self.path, self.problem)


class ImageReadError(DatasetError):
    """An image file cannot be decoded (missing, truncated, not an image)."""


class ConfigError(FusionPerceptionError):
    """A command-line option, method name or config value is invalid."""
