"""Built-in robustness attacks, one per module, registered through the ``unlearn_bench`` entry-point group
exactly as a third-party attack is (lazy ``"module:Class"`` placeholders: listing plugins imports none)."""

from bench.hookspecs import hookimpl
from bench.plugins import register_placeholders

#: plugin name -> "module:Class"
BUILTIN_ATTACKS = {
    "prompt": "bench.attacks.prompt:PromptAttack",
    "quantize": "bench.attacks.quantize:QuantizeAttack",
    "relearn": "bench.attacks.relearn:RelearnAttack",
}


@hookimpl
def register_attacks(register):
    register_placeholders(register, BUILTIN_ATTACKS)
