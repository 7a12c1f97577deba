"""`crafter-survivor`: the scripted Crafter player, plus nights spent sealed in a stone pocket.

`crafter-scripted` dies within a few hundred steps (177-607 over seeds 0-11), nearly always to
zombies: they spawn on grass in the dark (Crafter keeps up to ``3.5 - 3 * daylight`` per chunk)
and hit a sleeping player for 7. Long-episode studies (narration over 2,000 steps) need a player
that lives, so this one adds one rule in front of the tech tree: when night is near, or health is
low, it walls itself into a two-cell pocket and sleeps (or waits) there until morning.

The pocket: cells ``p = b + d`` and ``q = b + 2d`` in a line from a walkable cell ``b``, each walkable
or stone to dig (with a pickaxe), all six cells around them that are not ``b`` solid (nothing a
zombie walks on: not grass, sand or path). Crafter turns the player only by moving, and a move
into a free cell steps into it, so the player cannot face an open cell from inside a one-cell
hole; with two cells it can: enter ``p``, step on to ``q``, step back to ``p`` (now facing ``b``)
and place a stone on ``b``. Zombies, skeletons and arrows move only through free cells, and
nothing spawns within 6 cells of the player, so the pocket is safe. In the morning the player
mines the stone on ``b`` and goes on with the tech tree.

It plans on privileged state (the whole semantic map) like `crafter-scripted`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_cdt

from collect.policies.crafter_scripted import (
    A, DIRS, MAT, MAX_ITEM, OBJ, WALKABLE_IDS, CrafterScriptedPolicy, _OBJ_IDS,
)

#: Daylight below which the player wants to be sealed in (Crafter adds zombies as it falls:
#: at 0.6 a chunk already keeps up to 1.7 of them).
NIGHT = 0.35
#: Steps of warning: the player starts for a pocket when daylight this far ahead is below NIGHT.
LOOKAHEAD = 30
#: Health at or below which the player seals itself in by day too (a zombie hits for 2).
LOW_HEALTH = 4
#: Health it waits for inside before going out by day.
HEALED = 7
#: How far (walking steps) the player walks for a cow when hungry.
FOOD_RADIUS = 80
#: How far (walking steps) the player goes for water or a cow at dusk.
TOP_UP_RADIUS = 40
#: Walking steps a pocket's distance to water is worth (per cell).
WATER_WEIGHT = 2
#: Walking steps a pocket with a water wall is worth over one without (it saves night trips).
DRY_PENALTY = 25
#: How far (walking steps) a pocket may be.
POCKET_RADIUS = 30


def daylight(step: int) -> float:
    """Crafter's daylight at ``step`` since reset (``byog_env.crafter.daylight``)."""
    from byog_env.crafter import daylight as curve

    return float(curve(step))


@dataclass(frozen=True)
class Pocket:
    """A two-cell pocket: entrance ``b``, direction ``d``; ``p = b + d``, ``q = b + 2d``."""

    b: tuple[int, int]
    d: tuple[int, int]

    @property
    def p(self) -> tuple[int, int]:
        return (self.b[0] + self.d[0], self.b[1] + self.d[1])

    @property
    def q(self) -> tuple[int, int]:
        return (self.b[0] + 2 * self.d[0], self.b[1] + 2 * self.d[1])


def pocket_masks(sem: np.ndarray, can_dig: bool, water: bool = False) -> dict[tuple[int, int], np.ndarray]:
    """Per direction ``d``, the cells ``b`` from which a pocket ``(b, d)`` can be made.

    ``p`` and ``q`` must be free ground or (``can_dig``) stone, with no creature on them; the
    six cells around them other than ``b`` must be walls (not grass/sand/path, no creature, not
    lava; the world's edge counts); ``b`` must be walkable. Water stops zombies but not
    arrows: without ``water`` it is no wall; with ``water`` it is, and at least one of the six
    must be water (the player drinks from inside, facing it).
    """
    walk = np.isin(sem, WALKABLE_IDS)
    creature = np.isin(sem, list(_OBJ_IDS))
    is_water = sem == MAT["water"]
    hollow = (walk | (can_dig & (sem == MAT["stone"]))) & ~creature
    wall = ~(walk | creature | (sem == MAT["lava"]) | (is_water if not water else False))
    out = {}
    for d in DIRS.values():
        cells = _walls(d)
        ok = (walk & ~creature) & _at(hollow, d[0], d[1], False) & _at(hollow, 2 * d[0], 2 * d[1], False)
        wet = np.zeros_like(ok)
        for dx, dy in cells:
            ok &= _at(wall, dx, dy, True)
            wet |= _at(is_water, dx, dy, False)
        out[d] = ok & wet if water else ok
    return out


def _walls(d: tuple[int, int]) -> list[tuple[int, int]]:
    """Offsets from ``b`` of the six walls of the pocket ``(b, d)``."""
    px, py = d
    sx, sy = py, px  # a perpendicular
    return [(3 * px, 3 * py)] + [(k * px + s * sx, k * py + s * sy) for k in (1, 2) for s in (1, -1)]


def _at(m: np.ndarray, dx: int, dy: int, fill: bool) -> np.ndarray:
    """``out[x, y] = m[x + dx, y + dy]``, ``fill`` off the grid (the world's edge)."""
    pad = max(abs(dx), abs(dy))
    big = np.pad(m, pad, constant_values=fill)
    h, w = m.shape
    return big[pad + dx: pad + dx + h, pad + dy: pad + dy + w]


class CrafterSurvivorPolicy(CrafterScriptedPolicy):
    """`crafter-scripted` that spends nights and low-health spells sealed in a stone pocket."""

    name = "crafter-survivor"

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        super().reset(obs, info)
        self._pocket: Pocket | None = None
        self._sealed_at: tuple[int, int] | None = None  # where we placed the seal (to mine out)
        self._leaving = False  # digging out: committed until the seal is gone
        self._home: Pocket | None = None  # the pocket last used: back to it while it stands

    def _decide(self) -> int:
        if self._sealed_at is not None:
            act = self._inside()
            if act is not None:
                return act
        zombie = self._nearest_object(OBJ["zombie"], max_dist=3)
        if zombie is not None and self._inv["health"] > LOW_HEALTH - 1 and self._sealed_at is None:
            # Kill a close zombie before it follows us into the pocket (or hits us asleep).
            act = self._interact_with({OBJ["zombie"]}, A["do"], radius=4)
            if act is not None:
                self._goal = "fight the zombie"
                return act
        starving = self._inv["drink"] <= 3 or self._inv["food"] <= 3
        if self._sealed_at is None and self._wants_shelter() and not starving:
            act = self._top_up()
            act = act if act is not None else self._shelter()
            if act is not None:
                return act
        return super()._decide()

    def _top_up(self) -> int | None:
        """Drink and eat up before the night inside (leaving the pocket at night to drink is
        what kills)."""
        if self._inv["health"] <= LOW_HEALTH:
            return None
        if self._inv["drink"] < MAX_ITEM - 2:
            self._goal = "drink water before the night"
            act = self._interact_with({MAT["water"]}, A["do"], radius=TOP_UP_RADIUS)
            if act is not None:
                return act
        if self._inv["food"] < MAX_ITEM - 2:
            self._goal = "eat before the night"
            return self._interact_with({OBJ["cow"]}, A["do"], radius=TOP_UP_RADIUS)
        return None

    def _ground(self) -> np.ndarray:
        """The semantic map with the player's cell as free ground (it always stands on some)."""
        sem = self._sem.copy()
        sem[self._pos] = MAT["path"]
        return sem

    def _eat_if_hungry(self) -> int | None:
        food = self._inv["food"]
        if food > 4 and not (self._goal.startswith("eat") and food < 7):
            return None
        self._goal = "eat a cow"
        # Cows are few and slow to come back: walk the whole map for one (the scripted
        # player looks 30 steps around), and wander when none is reachable.
        act = self._interact_with({OBJ["cow"]}, A["do"], radius=FOOD_RADIUS)
        return self._explore() if act is None and food <= 3 else act

    def _drink_if_thirsty(self) -> int | None:
        act = super()._drink_if_thirsty()
        if act is None and self._inv["drink"] <= 3:
            return self._explore()
        return act

    # ------------------------------------------------------------------ when
    def _wants_shelter(self) -> bool:
        night = min(daylight(self._step), daylight(self._step + LOOKAHEAD)) < NIGHT
        return night or self._inv["health"] <= LOW_HEALTH or self._inv["energy"] <= 2

    def _may_leave(self) -> bool:
        inv = self._inv
        if inv["drink"] <= 2 or inv["food"] <= 2:
            return True  # starving inside is death too: go out and risk it
        return (not self._wants_shelter() and inv["health"] >= HEALED
                and inv["energy"] >= MAX_ITEM - 2)

    # ------------------------------------------------------------------ how
    def _shelter(self) -> int | None:
        """The next action of getting into, staying in or leaving the pocket (None: not now,
        e.g. no pocket reachable: the scripted rules go on)."""
        if self._sealed_at is not None:
            return self._inside()
        if self._inv["stone"] < 1 and self._inv["wood_pickaxe"] == 0:
            return None  # cannot seal (no stone) nor dig one out
        pocket = self._pocket if self._pocket is not None and self._valid(self._pocket) else None
        if pocket is None:
            pocket = self._pocket = self._find_pocket()
        if pocket is None:
            return None
        return self._enter(pocket)

    def _inside(self) -> int | None:
        pk = self._home
        seal = pk.b
        closed = self._sem[seal] == MAT["stone"]
        if self._info.get("sleeping"):
            self._goal = "sleep in the shelter"
            return A["noop"]  # Crafter ignores actions until the player wakes
        self._leaving = self._leaving or self._may_leave()
        if self._leaving:
            if closed:
                self._goal = "dig out of the shelter"
                if self._pos == pk.q:
                    return A[_move(_sub(pk.p, pk.q))]
                return self._face_and(seal, A["do"])
            self._sealed_at, self._pocket, self._leaving = None, None, False
            return None  # out: the scripted rules carry on
        if not closed:  # the seal went (dug by mistake): close it again, or start over
            if self._pos == pk.p and self._facing == _sub(seal, pk.p) and self._inv["stone"] > 0 \
                    and self._sem[seal] not in _OBJ_IDS:
                self._goal = "seal the shelter"
                return A["place_stone"]
            self._sealed_at, self._pocket = None, None
            return None
        if self._inv["drink"] < MAX_ITEM:
            act = self._drink_inside(pk)
            if act is not None:
                return act
        if self._inv["energy"] < MAX_ITEM:
            self._goal = "sleep in the shelter"
            self._sleeping = True
            return A["sleep"]
        self._goal = "wait in the shelter"
        return A["noop"]

    def _drink_inside(self, pk: Pocket) -> int | None:
        """Drink from a water wall of the pocket (stepping to its other cell if that one has it)."""
        for cell in (self._pos, pk.q if self._pos == pk.p else pk.p):
            for d in DIRS.values():
                w = (cell[0] + d[0], cell[1] + d[1])
                if self._in(w) and self._sem[w] == MAT["water"]:
                    self._goal = "drink in the shelter"
                    if cell == self._pos:
                        return self._face_and(w, A["do"])  # water is no floor: moving only turns
                    return A[_move(_sub(cell, self._pos))]
        return None

    def _enter(self, pk: Pocket) -> int | None:
        pos, d = self._pos, pk.d
        back = (-d[0], -d[1])
        self._goal = "go to a shelter"
        if pos == pk.b:
            if self._sem[pk.p] == MAT["stone"]:
                self._goal = "dig a shelter"
                return self._face_and(pk.p, A["do"])
            return A[_move(d)]
        if pos == pk.p:
            if self._facing == back:  # came back from q: seal the entrance
                if self._sem[pk.b] in _OBJ_IDS:
                    return self._face_and(pk.b, A["do"])  # something stands in it: hit it
                if self._inv["stone"] < 1:
                    return None
                self._goal = "seal the shelter"
                self._sealed_at, self._home = pk.b, pk
                return A["place_stone"]
            if self._sem[pk.q] == MAT["stone"]:
                self._goal = "dig a shelter"
                return self._face_and(pk.q, A["do"])
            return A[_move(d)]
        if pos == pk.q:
            return A[_move(back)]
        step = self._step_towards(lambda c: c == pk.b, max_dist=POCKET_RADIUS)
        if step is None:
            self._pocket = None
        return step

    def _adjacent(self, c: tuple[int, int]) -> bool:
        return abs(c[0] - self._pos[0]) + abs(c[1] - self._pos[1]) == 1

    def _valid(self, pk: Pocket) -> bool:
        if self._pos in (pk.p, pk.q):
            return True  # our own cells: the pattern holds once we stand in it
        masks = pocket_masks(self._ground(), self._inv["wood_pickaxe"] > 0)
        return bool(masks[pk.d][pk.b])

    def _find_pocket(self) -> Pocket | None:
        """The reachable pocket (within POCKET_RADIUS) with the least walk there plus
        ``WATER_WEIGHT`` x its distance to water: night-time drinking trips stay short. The last
        pocket used is kept while it is still a pocket."""
        if self._home is not None and self._valid(self._home):
            return self._home
        dig = self._inv["wood_pickaxe"] > 0
        dry, wet = pocket_masks(self._ground(), dig), pocket_masks(self._ground(), dig, water=True)
        if self._inv["stone"] < 1:  # the seal's stone must come from digging p or q
            stone = self._sem == MAT["stone"]
            dug = {d: _at(stone, d[0], d[1], False) | _at(stone, 2 * d[0], 2 * d[1], False) for d in DIRS.values()}
            dry = {d: m & dug[d] for d, m in dry.items()}
            wet = {d: m & dug[d] for d, m in wet.items()}
        usable = {d: dry[d] | wet[d] for d in dry}
        any_b = np.zeros_like(self._sem, dtype=bool)
        any_wet = np.zeros_like(self._sem, dtype=bool)
        for d in usable:
            any_b |= usable[d]
            any_wet |= wet[d]
        if not any_b.any():
            return None
        walk = self._walk_distances()
        water = distance_transform_cdt(self._sem != MAT["water"], metric="taxicab")
        cost = np.where(any_b & (walk >= 0), walk + WATER_WEIGHT * water, np.inf)
        cost = np.where(any_wet, cost - WATER_WEIGHT * water - DRY_PENALTY, cost)
        if not np.isfinite(cost).any():
            return None
        b = np.unravel_index(int(np.argmin(cost)), cost.shape)
        b = (int(b[0]), int(b[1]))
        d = next((d for d, m in wet.items() if m[b]), None) or next(d for d, m in usable.items() if m[b])
        self._home = Pocket(b, d)
        return self._home

    def _walk_distances(self) -> np.ndarray:
        """Walking steps from the player to every cell (BFS over walkable cells, at most
        POCKET_RADIUS; -1: not reached)."""
        walk = np.isin(self._sem, WALKABLE_IDS)
        dist = np.full(self._sem.shape, -1, dtype=np.int64)
        dist[self._pos] = 0
        frontier = deque([self._pos])
        while frontier:
            c = frontier.popleft()
            if dist[c] >= POCKET_RADIUS:
                continue
            for d in DIRS.values():
                n = (c[0] + d[0], c[1] + d[1])
                if self._in(n) and walk[n] and dist[n] < 0:
                    dist[n] = dist[c] + 1
                    frontier.append(n)
        return dist


def _sub(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] - b[0], a[1] - b[1])


def _move(d: tuple[int, int]) -> str:
    return next(name for name, v in DIRS.items() if v == d)


def make(arg: str | None, env: Any, seed: int | None) -> CrafterSurvivorPolicy:
    """Registry factory of `crafter-survivor`."""
    return CrafterSurvivorPolicy(env, seed=seed)


__all__ = ["CrafterSurvivorPolicy", "Pocket", "daylight", "make", "pocket_masks", "OBJ"]
