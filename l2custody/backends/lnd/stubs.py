"""lnd's compiled gRPC modules from lnd-grpc-client, without the rest of that package.

lnd-grpc-client ships the ``_pb2``/``_pb2_grpc`` modules we use under
``lndgrpc.compiled``, but importing anything below ``lndgrpc`` first runs
``lndgrpc/__init__.py``, which imports its own sync and asyncio clients, grpc's
aio layer and more: 100 to 340 ms that no l2custody command needs. So the
package is entered without its ``__init__``: ``lndgrpc`` is registered as a
bare package over the installed directory; its ``__init__`` runs only if
something asks the package itself for an attribute (``lndgrpc.LNDClient``), so
other users of lnd-grpc-client in the same process still get the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from l2custody.errors import NodeError


def compiled(name: str) -> ModuleType:
    """The module ``lndgrpc.compiled.<name>`` (e.g. ``lightning_pb2``), ``lndgrpc`` left uninitialised."""
    _enter_package()
    return importlib.import_module(f"lndgrpc.compiled.{name}")


def _enter_package() -> None:
    if "lndgrpc" in sys.modules:
        return
    spec = importlib.util.find_spec("lndgrpc")  # for a top-level name, this runs nothing
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise NodeError("lnd-grpc-client is not installed: reinstall l2custody (pip install l2custody)")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load_on_demand(attribute: str) -> Any:
        # Someone wants more than the compiled modules: run the real __init__ once.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = load_on_demand  # type: ignore[method-assign]
    sys.modules["lndgrpc"] = package
