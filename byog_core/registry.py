"""A name -> plugin registry, in the style of gymnasium's ``register(id, entry_point)``.

A value is registered either as the object itself or as a string entry point
``"package.module:attribute"`` that is imported on first use, so a registry of torch-heavy
plugins can be filled (and names validated) from torch-free modules such as
:mod:`agents.config`.

A name may also be looked up as ``"package.module:name"``: the module is imported first (it
registers its plugins when imported) and ``name`` is then looked up. Saved configs that name
a plugin that way load in a fresh process — a spawned worker, a reloaded checkpoint — with no
import by hand. An unknown name is one error that lists the known ones, never a silent default.

Registering the same plugin again is harmless (``importlib.reload`` of a registering module, a
spawned worker or Ray actor importing it afresh): an equal value, or an object with the same
``module:qualname``, replaces the old one; a *different* plugin under a taken name is an error.
This module imports nothing heavy: every package (``byog_env``, ``collect``, ``agents``,
``experiments``) builds its tables from it.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from byog_core.errors import RegistryError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping ``name -> plugin`` plus :meth:`register`.

    Args:
        kind: What the plugins are, for error messages (``"predictor objective"``).
        error: The exception class raised for clashing, unimportable (and unknown) names.
        hint: How to add one, appended to the unknown-name error.
        unknown: The exception class for an unknown name, when it differs from ``error``
            (``byog_env``'s ``UnknownEnvError``, which gymnasium users catch).
    """

    def __init__(self, kind: str, *, error: type[Exception] = RegistryError, hint: str = "",
                 unknown: type[Exception] | None = None) -> None:
        self.kind = kind
        self.error = error
        self.unknown = unknown or error
        self.hint = hint
        self._entries: dict[str, T | str] = {}

    @classmethod
    def of(cls, kind: str, entries: Mapping[str, T | str], **kwargs: Any) -> Registry[T]:
        """A registry of ``kind`` holding ``entries`` (in their order); ``kwargs`` as ``__init__``."""
        reg: Registry[T] = cls(kind, **kwargs)
        for name, value in entries.items():
            reg.register(name, value)
        return reg

    def register(self, name: str, value: T | str | None = None, *, overwrite: bool = False) -> Any:
        """Register ``value`` (an object or a ``"module:attr"`` entry point) under ``name``.

        Without ``value`` returns a decorator: ``@REGISTRY.register("name")``.
        """
        if value is None:
            def deco(obj: T) -> T:
                self.register(name, obj, overwrite=overwrite)
                return obj
            return deco
        if not name or ":" in name:
            raise self.error(f"A {self.kind} name must be non-empty and hold no ':', got {name!r}.")
        if name in self._entries and not overwrite and not _same(self._entries[name], value):
            raise self.error(f"A {self.kind} named {name!r} is already registered; pick another "
                             "name or pass overwrite=True.")
        self._entries[name] = value
        return value

    def _import_for(self, name: str) -> str:
        """For a ``"module:name"`` lookup import the module (it registers itself); return name."""
        module, _, short = name.rpartition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise self.error(f"The {self.kind} {name!r} needs module {module!r}, which cannot be "
                             f"imported ({err}); install it or put it on PYTHONPATH.") from None
        return short

    def _key(self, name: str) -> str:
        """The registered key of ``name`` (importing a ``"module:name"``'s module first)."""
        short = self._import_for(name) if ":" in name else name
        if short not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            near = difflib.get_close_matches(short, list(self._entries), n=1)
            guess = f" Did you mean {near[0]!r}?" if near else ""
            raise self.unknown(f"Unknown {self.kind} {name!r}; known: {known}.{guess} "
                             f"{self.hint}".strip())
        return short

    def __getitem__(self, name: str) -> T:
        short = self._key(name)
        value = self._entries[short]
        if isinstance(value, str):  # a string entry point: import it now, once
            module, _, attr = value.partition(":")
            value = getattr(importlib.import_module(module), attr)
            self._entries[short] = value
        return value  # type: ignore[return-value]

    def check(self, name: str) -> str:
        """Raise the registry's error unless ``name`` is known, without importing its entry
        point (only a ``"module:name"``'s module); return ``name``."""
        self._key(name)
        return name

    def entry(self, name: str) -> T | str:
        """What ``name`` was registered as, without importing it (an entry point stays a string)."""
        return self._entries[self._key(name)]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The plugin registered as exactly ``name``, else ``default`` (no error, no import of a
        ``"module:name"``'s module)."""
        return self[name] if name in self else default

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's temporary plugin); unknown names are ignored."""
        self._entries.pop(name, None)

    def registration_order(self) -> list[str]:
        """The names in the order they were registered (iteration is sorted, for listings)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


def _same(old: Any, new: Any) -> bool:
    """Whether ``new`` is ``old`` registered again (a reload or a fresh import), not a clash."""
    if old is new:
        return True
    try:
        if old == new:
            return True
    except Exception:  # noqa: BLE001 - an odd __eq__ is no reason to refuse; compare names below
        pass
    name = getattr(new, "__qualname__", None)
    return (name is not None and name == getattr(old, "__qualname__", None)
            and getattr(new, "__module__", None) == getattr(old, "__module__", None))


def entry_point(value: Callable[..., Any] | str) -> str:
    """The ``"module:attr"`` string of a registered object (for listings)."""
    return value if isinstance(value, str) else f"{value.__module__}:{value.__qualname__}"
