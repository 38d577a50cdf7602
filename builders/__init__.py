"""Dataset builders: raw data or physics in, a :class:`dismai_data.build.DatasetBuild` out.

Installed as ``dismai_data.builders``. Each entry of :data:`BUILDERS` names a module
with a ``build(**params) -> DatasetBuild`` function, a ``DESCRIPTION`` line and a
``PARAMETERS`` dict (name -> (default, help)); ``dismai build NAME`` runs it.
"""

from __future__ import annotations

if __name__ != "dismai_data.builders":  # the checkout root on sys.path makes this folder importable as 'builders'
    raise ImportError(f"{__name__!r} is the checkout folder builders/: it is installed as dismai_data.builders; "
                      "import that (a second copy would share, and break, the first one's numba cache)")

import importlib
from types import ModuleType

#: dataset name -> module (relative to this package) that builds it.
BUILDERS: dict[str, str] = {
    "jarvis-supercon-3d": "supercon",
    "alexandria-ds-ab": "alexandria",
    "perov-5": "atomgen",
    "carbon-24": "atomgen",
    "alloy": "alloy",
    "a-si": "a_si",
    "interface": "interface",
}

#: Datasets built by the README's main command (the embedded default).
DEFAULT_DATASETS: tuple[str, ...] = ("jarvis-supercon-3d", "alexandria-ds-ab", "perov-5", "carbon-24", "alloy")


def builder_module(name: str) -> ModuleType:
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(BUILDERS))}")
    return importlib.import_module(f"{__name__}.{BUILDERS[name]}")


def run_builder(name: str, **params):
    """Run the builder of ``name`` and return its DatasetBuild."""
    module = builder_module(name)
    return module.build(name=name, **params) if getattr(module, "MULTI", False) else module.build(**params)
