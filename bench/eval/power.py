"""Moved to ``bench.inference.power`` (power at the board's decision levels, with the seed component); this
module re-exports it for code that imported it here."""

from bench.inference.power import *  # noqa: F401,F403
from bench.inference.power import __all__  # noqa: F401
