"""Built-in tasks, one per module or folder. They reach the harness exactly as a third-party plugin does:
this package is an entry point of the ``unlearn_bench`` group and its hook registers each task, lazily
(``"module:Class"`` placeholders, see ``methods/__init__.py``)."""

from bench.hookspecs import hookimpl
from bench.plugins import register_placeholders

#: plugin name -> "module:Class"
BUILTIN_TASKS = {
    "coding": "tasks.coding:CodingTask",
    "ner": "tasks.ner:NerTask",
    "toxicity": "tasks.toxicity:ToxicityTask",
}


@hookimpl
def register_tasks(register):
    register_placeholders(register, BUILTIN_TASKS)
