"""Built-in unlearning methods, one per module. They reach the harness exactly as a third-party plugin
does: this package is an entry point of the ``unlearn_bench`` group and its hook registers each method.
The registrations are lazy placeholders (``"module:Class"``, as lm-evaluation-harness's registry allows),
so that listing plugins imports neither torch nor the method modules; a method module is imported, and its
class checked, the first time a run or ``unlearn-bench plugins --check`` asks for it."""

from bench.hookspecs import hookimpl
from bench.plugins import register_placeholders

#: plugin name -> "module:Class"
BUILTIN_METHODS = {
    "flat": "methods.flat:FLAT",
    "ga": "methods.ga:GradientAscent",
    "graddiff": "methods.graddiff:GradDiff",
    "icu": "methods.icu:ICU",
    "idk": "methods.idk:IDK",
    "npo": "methods.npo:NPO",
    "prompt": "methods.prompt:PromptBaseline",
    "retain_ft": "methods.retain_ft:RetainFineTune",
    "rmu": "methods.rmu:RMU",
    "rnr": "methods.rnr:RevealAndRelease",
    "simnpo": "methods.simnpo:SimNPO",
}


@hookimpl
def register_methods(register):
    register_placeholders(register, BUILTIN_METHODS)
