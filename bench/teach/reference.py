"""The reference rows of a taught task: the *oracle* (taught without the forget target: what a perfect
unlearning should resemble) and the *untaught* base model (what the taught capability was taught to).

Each is a cell of the pseudo-method ``reference`` (registered only in runs with ``teach:``, whose config adds
this module to ``plugins`` so that every worker finds it): the engine lends the cell the role's model instead
of the taught one (``Engine.model_ref``), and "unlearning" changes nothing. The cell is then evaluated,
attacked and scored against the taught model exactly as a method's is, so the oracle's distance from the
taught model is measured with the same paired intervals as every method's. Unseeded: one cell per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bench.api import Method, UnlearnContext
from bench.hookspecs import hookimpl

#: Leaderboard row names of the roles.
LABELS = {"oracle": "oracle", "untaught": "untaught base"}


@dataclass
class ReferenceParams:
    role: Literal["oracle", "untaught"] = "oracle"
    #: The (taught, oracle) pair of a run with ``teach_pairs`` > 1 whose oracle this is (pair 0: the recipe's
    #: seed; pair p: seed + p). The untaught base is one model for every pair: pair 0 only.
    pair: int = 0
    #: The leaderboard row (set from ``role`` and ``pair``: "oracle", "oracle (teaching pair 2)").
    label: str = ""

    def validate(self) -> None:
        if self.pair < 0 or (self.role == "untaught" and self.pair != 0):
            raise ValueError(f"pair must be >= 0 (and 0 for the untaught base), got {self.pair}")
        self.label = self.label or (LABELS[self.role] if self.pair == 0 else
                                    f"{LABELS[self.role]} (teaching pair {self.pair})")


class ReferenceModel(Method):
    """A reference model of a taught task, scored as a row; the engine lends it, nothing is trained."""

    name = "reference"
    description = "The oracle (taught without the forget target) or the untaught base of a taught task"
    Params = ReferenceParams
    seeded = False

    def unlearn(self, ctx: UnlearnContext) -> Any:
        ctx.extras["reference"] = self.params.role
        return ctx.model

    def memory_profile(self) -> tuple[int, bool]:
        return 0, False

    def ends_with_adapter(self) -> bool:
        return False


@hookimpl
def register_methods(register):
    register(ReferenceModel)
