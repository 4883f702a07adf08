"""unlearn-bench: a benchmark harness for LLM unlearning methods.

The engine (runner, results store, plugin manager, shared training and evaluation code) lives here;
built-in methods live in the top-level ``methods`` package and built-in tasks in ``tasks``. Both are
registered through the ``unlearn_bench`` entry-point group exactly like third-party plugins.
"""

__version__ = "0.1.0"

#: Version of the on-disk results layout. A results directory written with another schema version is
#: refused (never silently mixed or overwritten).
RESULTS_SCHEMA = 2
