"""The two-cell stone pocket `crafter-survivor` spends its nights in: geometry on the semantic map.

A pocket is an entrance cell ``b`` and a direction ``d``: cells ``p = b + d`` and ``q = b + 2d``.
``p`` and ``q`` are free ground or stone to dig out; the five cells around them other than ``b``
are walls (nothing a zombie, skeleton or cow walks on). Crafter turns the player only by moving,
and a move into a free cell steps into it, so a player in a one-cell hole can never face its
open side; with two cells it can: enter ``p``, step on to ``q``, step back to ``p`` (now facing
``b``) and place a stone on ``b``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from collect.policies.crafter_scripted import _OBJ_IDS, DIRS, MAT, WALKABLE_IDS

Cell = tuple[int, int]


@dataclass(frozen=True)
class Pocket:
    """A two-cell pocket: entrance ``b``, direction ``d``; ``p = b + d``, ``q = b + 2d``."""

    b: Cell
    d: Cell

    @property
    def p(self) -> Cell:
        return (self.b[0] + self.d[0], self.b[1] + self.d[1])

    @property
    def q(self) -> Cell:
        return (self.b[0] + 2 * self.d[0], self.b[1] + 2 * self.d[1])

    def walls(self) -> list[Cell]:
        """The five wall cells (may lie off the grid)."""
        return [(self.b[0] + dx, self.b[1] + dy) for dx, dy in _walls(self.d)]


def pocket_masks(sem: np.ndarray, can_dig: bool, water: bool = False) -> dict[Cell, np.ndarray]:
    """Per direction ``d``, the cells ``b`` from which a pocket ``(b, d)`` can be made.

    ``p`` and ``q`` must be free ground or (``can_dig``) stone, with no creature on them; the
    five cells around them other than ``b`` must be walls (not grass/sand/path, no creature, not
    lava; the world's edge counts); ``b`` must be walkable. Water stops zombies but not
    arrows: without ``water`` it is no wall; with ``water`` it is, and at least one of the five
    must be water (the player drinks from inside, facing it).
    """
    walk = np.isin(sem, WALKABLE_IDS)
    creature = np.isin(sem, list(_OBJ_IDS))
    is_water = sem == MAT["water"]
    hollow = (walk | (can_dig & (sem == MAT["stone"]))) & ~creature
    wall = ~(walk | creature | (sem == MAT["lava"]) | (is_water if not water else False))
    out = {}
    for d in DIRS.values():
        ok = (walk & ~creature) & _at(hollow, d[0], d[1], False) & _at(hollow, 2 * d[0], 2 * d[1], False)
        wet = np.zeros_like(ok)
        for dx, dy in _walls(d):
            ok &= _at(wall, dx, dy, True)
            wet |= _at(is_water, dx, dy, False)
        out[d] = ok & wet if water else ok
    return out


def _walls(d: Cell) -> list[Cell]:
    """Offsets from ``b`` of the five walls of the pocket ``(b, d)``."""
    px, py = d
    sx, sy = py, px  # a perpendicular
    return [(3 * px, 3 * py)] + [(k * px + s * sx, k * py + s * sy) for k in (1, 2) for s in (1, -1)]


def _at(m: np.ndarray, dx: int, dy: int, fill: bool) -> np.ndarray:
    """``out[x, y] = m[x + dx, y + dy]``, ``fill`` off the grid (the world's edge)."""
    pad = max(abs(dx), abs(dy))
    big = np.pad(m, pad, constant_values=fill)
    h, w = m.shape
    return big[pad + dx: pad + dx + h, pad + dy: pad + dy + w]


def walk_distances(sem: np.ndarray, start: Cell, radius: int) -> np.ndarray:
    """Walking steps from ``start`` to every cell (BFS over walkable cells free of creatures,
    at most ``radius``; -1: not reached)."""
    walk = np.isin(sem, WALKABLE_IDS) & ~np.isin(sem, list(_OBJ_IDS))
    h, w = sem.shape
    dist = np.full(sem.shape, -1, dtype=np.int64)
    dist[start] = 0
    frontier = deque([start])
    while frontier:
        c = frontier.popleft()
        if dist[c] >= radius:
            continue
        for d in DIRS.values():
            n = (c[0] + d[0], c[1] + d[1])
            if 0 <= n[0] < h and 0 <= n[1] < w and walk[n] and dist[n] < 0:
                dist[n] = dist[c] + 1
                frontier.append(n)
    return dist


def sub(a: Cell, b: Cell) -> Cell:
    return (a[0] - b[0], a[1] - b[1])
