"""Deprecated module path (moved in plugin API 1.0 to ``bench.lm.losses``; removed in 1.1): its names resolve
to the facade's (``from bench import cross_entropy``) with a ``DeprecationWarning``. See ``bench.deprecation``."""

from bench.deprecation import module_getattr

__getattr__ = module_getattr(__name__, whole_module_moved=True)
