"""User-facing errors: one line, naming the fix, exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class UserError(Exception):
    """Bad input from the user. The CLI prints ``error: <message>`` on one line and exits with 2."""

    exit_code = 2


class Diverged(Exception):
    """Training produced a non-finite loss or an exploding gradient; the cell stops as ``diverged``."""

    def __init__(self, step: int, reason: str):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step = step
        self.reason = reason


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return a ``" (did you mean 'x'?)"`` hint, or a list of the valid names when nothing is close."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid: {', '.join(known) if known else '(none registered)'}"


def unknown(kind: str, name: str, known: Iterable[str]) -> UserError:
    """A UserError for an unknown plugin/config name, with a suggestion."""
    return UserError(f"unknown {kind} '{name}'; {did_you_mean(name, known)}")


def require_package(module: str, fix: str) -> Any:
    """Import an optional dependency, or raise a one-line ``UserError`` naming the install that provides it
    (``fix``, e.g. "pip install 'unlearn-bench[ray]'")."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{fix} ({module} is not installed)") from None
