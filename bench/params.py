"""Typed parameter dataclasses built from user dicts (YAML / CLI), with clear errors.

Every method and task declares a ``Params`` dataclass. ``build_params`` turns a plain dict into it,
rejecting unknown keys with a "did you mean" hint and coercing scalar types, then calls the
dataclass's ``validate()`` so that bad hyperparameters fail before any cell starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else typing.Any
        return [_coerce(v, item, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a mapping, got {value!r}")
        key_type, value_type = args or (typing.Any, typing.Any)
        return {_coerce(k, key_type, where): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"{where} must be true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UserError(f"{where} must be a number, got {value!r}")
        try:
            out = annotation(value)
        except (TypeError, ValueError):
            raise UserError(f"{where} must be {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != out:
            raise UserError(f"{where} must be an integer, got {value!r}")
        return out
    if annotation is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}")
    return value


def require_at_least_one(params: Any, *names: str) -> None:
    """``validate()`` helper: each named integer field must be >= 1."""
    for name in names:
        if getattr(params, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(params, name)}")


def require_data_files(folder: str | None, names: Sequence[str], key: str) -> None:
    """``validate()`` helper: ``folder`` (when set) holds each of ``names`` as a non-empty file.

    Checked when the matrix is planned, so a typo in a path stops the run before anything is written
    instead of failing every cell of the task later.
    """
    if folder is None:
        return
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ValueError(f"{key} {folder} is not a folder; fix the path (it must hold {', '.join(names)})")
    for name in names:
        file = path / name
        if not file.is_file():
            raise ValueError(f"{key}: {file} is missing; the folder must hold {', '.join(names)}")
        if file.stat().st_size == 0 or not file.read_text(encoding="utf-8", errors="replace").strip():
            raise ValueError(f"{key}: {file} is empty; point {key} at a folder with data")


def require_file(path: str | None, key: str, fix: str) -> None:
    """``validate()`` helper: ``path`` (when set) is an existing, non-empty file."""
    if path is None:
        return
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"{key} {path} does not exist; {fix}")
    if file.stat().st_size == 0:
        raise ValueError(f"{key} {path} is empty; {fix}")


def build_params(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys and bad types raise ``UserError``."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            raise UserError(f"unknown key '{key}' in {where}; {did_you_mean(key, fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    params = cls(**kwargs)
    validate = getattr(params, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as err:
            raise UserError(f"invalid {where}: {err}") from None
    return params


def params_dict(params: Any) -> dict[str, Any]:
    """The params as a JSON-serialisable dict (for result files and hashing)."""
    return json.loads(json.dumps(dataclasses.asdict(params), default=str))


def stable_hash(obj: Any, length: int = 10) -> str:
    """A short, stable hash of a JSON-serialisable object (key order independent)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
