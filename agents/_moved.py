"""Old module paths of ``agents`` that moved into its rooms keep importing, with a warning.

``agents/`` was split into rooms (``agents.model``, ``agents.narrate``, ``agents.imagine``,
``agents.obs``, ``agents.training``). Code, configs and checkpoints written before name the old
flat paths (``from agents.text import unslot``, a registry entry ``"agents.world_model:..."``,
``python -m agents.embed``). :class:`MovedFinder`, installed by ``import agents``, makes each old
dotted name an alias of the module's new home: the *same module object* (so registries,
monkeypatches and ``isinstance`` see one module), after a ``DeprecationWarning`` naming the new
path. ``python -m OLD`` runs the new module's code as ``__main__`` (the warning is shown).

The old paths that are now packages themselves (``agents.model``, ``agents.narrate``,
``agents.imagine``) answer their moved names from the package (see their ``__init__``), and
``agents.train`` is a small module of its own (``python agents/train.py`` is a script path).
This module imports nothing of the project: it must stay cheap, as ``import agents`` runs it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import CodeType, ModuleType

MOVED: dict[str, str] = {
    # the model
    "agents.encoder": "agents.model.encoder",
    "agents.lm": "agents.model.lm",
    "agents.lora": "agents.model.lora",
    "agents.hf": "agents.model.hf",
    "agents.predictor": "agents.model.predictor",
    "agents.objectives": "agents.model.objectives",
    "agents.losses": "agents.model.losses",
    "agents.text": "agents.model.text",
    "agents.kv_cache": "agents.model.kv_cache",
    "agents.decode_plan": "agents.model.decode_plan",
    "agents.slot_rule": "agents.model.slot_rule",
    "agents.weights": "agents.model.weights",
    "agents.accel": "agents.model.accel",
    "agents.monitors": "agents.model.monitors",
    # live narration
    "agents.narrator": "agents.narrate.narrator",
    "agents.narration": "agents.narrate.narration",
    "agents.vector_narration": "agents.narrate.vector_narration",
    "agents.clip_narration": "agents.narrate.clip_narration",
    # imagination
    "agents.world_model": "agents.imagine.world_model",
    "agents.grid_tokens": "agents.imagine.grid_tokens",
    "agents.copy_path": "agents.imagine.copy_path",
    "agents.steering": "agents.imagine.steering",
    "agents.imagine_stats": "agents.imagine.stats",
    "agents.imagine_study": "agents.imagine.study",
    # observation encoders, the ground floor
    "agents.embed": "agents.obs.embed",
    "agents.registry": "byog_core.registry",
}


def moved_message(old: str, new: str) -> str:
    """The one deprecation message: ``agents.text moved to agents.model.text; ...``."""
    return f"{old} moved to {new}; import it from there (the old path will be removed)."


def warn_moved(old: str, new: str, *, stacklevel: int = 3, cli: bool = False) -> None:
    """Warn that ``old`` moved to ``new``. ``cli=True``: a command line (``python -m OLD``)
    is running, so the warning is attributed to ``__main__`` and Python shows it by default."""
    if cli:
        warnings.warn_explicit(moved_message(old, new), DeprecationWarning, filename=old,
                               lineno=0, module="__main__")
    else:
        warnings.warn(moved_message(old, new), DeprecationWarning, stacklevel=stacklevel)


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the module of its new name (imported first, once)."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self._spec = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # importlib's frames are skipped when warnings count stack levels: this lands on the
        # line that imported the old name
        warn_moved(self.old, self.new, stacklevel=3)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__  # importlib sets __spec__ to the alias's spec: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        if self._spec is not None:
            module.__spec__ = self._spec

    def get_code(self, fullname: str) -> CodeType | None:
        """``python -m OLD``: runpy asks for the code to run as ``__main__``."""
        warn_moved(self.old, self.new, cli=True)
        spec = importlib.util.find_spec(self.new)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "get_code"):
            raise ImportError(f"cannot run {self.new} (moved from {self.old})")
        return spec.loader.get_code(self.new)


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old dotted names of :data:`MOVED` (and nothing else)."""

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        target = importlib.util.find_spec(new)  # its file: runpy makes it sys.argv[0]
        return importlib.util.spec_from_loader(fullname, _AliasLoader(fullname, new),
                                               origin=target.origin if target else None)


def install() -> None:
    """Put one :class:`MovedFinder` first on ``sys.meta_path`` (idempotent, reload-safe): it
    answers only the old names, and must answer them before any finder that still knows an old
    file (an editable install of an older checkout, a stale copy on the path)."""
    if not any(type(f).__name__ == "MovedFinder" and type(f).__module__ == __name__
               for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())


def package_attribute(package: str, name: str, api: dict[str, str], old: dict[str, str]) -> object:
    """The module ``__getattr__`` of a room that took an old module's path (``agents.model``,
    ``agents.narrate``, ``agents.imagine``): its public ``api`` (name -> module) imports on
    first use; a name the old module held (``old``: name -> the module it lives in now)
    resolves with a ``DeprecationWarning``; anything else is an AttributeError (so
    ``from package import submodule`` imports the submodule)."""
    if name in api:
        return getattr(importlib.import_module(api[name]), name)
    if name in old:
        warn_moved(f"{package}.{name}", f"{old[name]}.{name}", stacklevel=4)
        return getattr(importlib.import_module(old[name]), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
