"""One module of a package, without running the package's ``__init__``.

Both node libraries make their package ``__init__`` import far more than a
command needs:

- lnd-grpc-client's ``lndgrpc/__init__.py`` imports its sync and asyncio
  clients and grpc's aio layer (100 to 340 ms); we need only the compiled
  ``lndgrpc.compiled.*_pb2`` modules.
- pyln-client's ``pyln/client/__init__.py`` imports the plugin framework,
  gossmap and pyln-proto (about 30 ms); we need only ``pyln.client.lightning``.

:func:`submodule` registers such a package as a bare package over its
installed directory and imports just the wanted module. The package's own
``__init__`` still runs, once, the first time anything asks the package itself
for an attribute (``from pyln.client import Plugin``, ``lndgrpc.LNDClient``),
so other code in the same process sees the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from l2custody.errors import NodeError


def submodule(package: str, name: str) -> ModuleType:
    """``package.name`` imported with ``package``'s ``__init__`` deferred (see the module docstring)."""
    _enter(package)
    return importlib.import_module(f"{package}.{name}")


def _enter(package: str) -> None:
    if package in sys.modules:
        return
    parent, _, _ = package.rpartition(".")
    if parent:
        importlib.import_module(parent)  # namespace packages (pyln) run no code
    spec = importlib.util.find_spec(package)  # finds, runs nothing
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise NodeError(f"the Python package {package} is not installed: reinstall l2custody")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load_on_demand(attribute: str) -> Any:
        # Someone wants more than the submodules we loaded: run the real __init__ once.
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, attribute)

    module.__getattr__ = load_on_demand  # type: ignore[method-assign]
    sys.modules[package] = module
    if parent:
        setattr(sys.modules[parent], package.rpartition(".")[2], module)
