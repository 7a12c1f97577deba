"""Moved to :mod:`byog_core.registry` (the ground floor every package imports); this name keeps
working. The agents' registries pass ``error=`` so their unknown names stay ``AgentsError``s."""
from byog_core.registry import Registry, entry_point

__all__ = ["Registry", "entry_point"]
