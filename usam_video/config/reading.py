"""Reading one YAML config file: parse it, expand ``$VARS`` and resolve relative paths against
its folder, validate it, and name the file in every error.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from usam_video.errors import ConfigError

__all__ = [
    "read_yaml",
    "naming_unset_variables",
    "resolve_paths",
    "validate_config",
]

_T = TypeVar("_T", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path``.

    Raises:
        ConfigError: naming the file: it is missing, is not valid YAML, or holds no mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: expected a YAML config file, found nothing.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: expected valid YAML, got: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}.")
    return data


# ``$NAME`` or ``${NAME}``; ``${...}`` with anything else inside is refused, not left as text.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<name>[A-Za-z_][A-Za-z0-9_]*))")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _UnsetVariable(Exception):
    """Raised while expanding; the loader that knows the YAML file turns it into a ConfigError."""

    def __init__(self, key: str, value: str, name: str):
        super().__init__(key, value, name)
        self.key, self.value, self.name = key, value, name


@contextlib.contextmanager
def naming_unset_variables(path: Path) -> Iterator[None]:
    """Inside the block, a ``$VAR`` that :func:`resolve_paths` cannot expand (unset, empty, or
    not a variable name) is raised as a :class:`ConfigError` naming ``path``, the key and the value."""
    try:
        yield
    except _UnsetVariable as exc:
        if not _VARIABLE_NAME.fullmatch(exc.name):
            raise ConfigError(
                f"{path}: {exc.key}: expected ${{NAME}} with a variable name in {exc.value!r}, "
                f"got ${{{exc.name}}}. Fix the reference."
            ) from None
        raise ConfigError(
            f"{path}: {exc.key}: expected environment variable {exc.name} to be set (used in "
            f"{exc.value!r}), got it unset or empty. Export {exc.name}, or write the value out."
        ) from None


def _expand_variables(key: str, value: str) -> str:
    """``value`` with every ``$NAME``/``${NAME}`` replaced by its environment value.

    os.path.expandvars leaves an unset variable as literal text, which turned ``store: ${NAME}``
    into a folder named ``${NAME}``: an unset (or empty) variable is an error instead.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") if match.group("braced") is not None else match.group("name")
        if not _VARIABLE_NAME.fullmatch(name) or not os.environ.get(name):
            raise _UnsetVariable(key, value, name)
        return os.environ[name]

    return _VARIABLE.sub(substitute, value)


def resolve_paths(data: dict[str, Any], base: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Resolve relative path values of ``keys`` against ``base`` (expanding ``$VARS`` and ``~``;
    URLs get their variables expanded and are otherwise kept as they are)."""
    out = dict(data)
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or not value:
            continue
        value = _expand_variables(key, value)
        if "://" in value:
            out[key] = value
            continue
        expanded = Path(os.path.expanduser(value))
        out[key] = str(expanded if expanded.is_absolute() else (base / expanded).resolve())
    return out


def validate_config(model: type[_T], data: dict[str, Any], path: Path) -> _T:
    """``data`` validated as ``model``.

    Raises:
        ConfigError: naming ``path``, the model and every invalid field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid {model.__name__}: {problems}") from exc
