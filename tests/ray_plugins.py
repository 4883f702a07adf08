"""Plugins for the Ray executor tests, importable by Ray workers (named in the config's ``plugins:``)."""

import os

from bench.api import Method, TrainParams
from bench.hookspecs import hookimpl
from bench.testing import ToyTask


class KillWorker(Method):
    """Kills the process it runs in, as a segfault or the OOM killer would."""

    name = "kill_worker"
    Params = TrainParams

    def unlearn(self, ctx):
        os._exit(17)


@hookimpl
def register_methods(register):
    register(KillWorker)


@hookimpl
def register_tasks(register):
    register(ToyTask)
