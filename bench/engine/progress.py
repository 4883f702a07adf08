"""Progress bars (tqdm on stderr), switched off for non-interactive use and tests."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled(requested: bool = True) -> bool:
    return requested and os.environ.get("UNLEARN_BENCH_PROGRESS", "1") != "0"


def bar(items: Iterable[T], show: bool, desc: str, **kwargs: Any) -> Iterable[T]:
    return tqdm(items, desc=desc, leave=False, disable=not enabled(show), dynamic_ncols=True, **kwargs)
