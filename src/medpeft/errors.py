"""Error types: every user-facing failure is a ``MedpeftError`` whose message names the file/row/field."""

from __future__ import annotations


class MedpeftError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class CheckpointError(MedpeftError, ValueError):
    """A checkpoint or adapter file is missing, malformed, or does not match the model."""


class DataError(MedpeftError, ValueError):
    """A dataset file, manifest row or image is missing or malformed."""


class ConfigError(MedpeftError, ValueError):
    """A configuration value or command-line option is invalid."""


class OutputExistsError(MedpeftError, FileExistsError):
    """An output folder already holds results; medpeft never overwrites them silently."""
