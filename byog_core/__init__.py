"""The ground floor every BYOG package imports: one name -> plugin :class:`~byog_core.registry.Registry`
and one command-line runner with one exit-code policy (:mod:`byog_core.cli`).

Torch-free and gymnasium-free on import, so a config dataclass, a spawned worker or a Ray
actor can use it without pulling in anything heavy.
"""
