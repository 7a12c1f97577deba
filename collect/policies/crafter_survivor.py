"""`crafter-survivor`: the scripted Crafter player on a day/night timetable, nights sealed in stone.

`crafter-scripted` dies within a few hundred steps, nearly always to zombies: Crafter spawns them
on grass as daylight falls (up to ``int(3.5 - 3 * daylight)`` per 12x12 chunk: none while
daylight >= 0.84, i.e. roughly steps 5-115 of each 300-step day) and they hit a sleeping player
for 7. Long-episode studies (narration over 2,000 steps) need a player that lives, so this one
keeps a timetable:

- Day (cycle steps ``DAWN``..``DUSK``): swords first (wood, then stone), then the tech tree up to
  stone tools, furnace, coal and saplings (no iron or diamond trips into the skeletons'
  tunnels), drinking and hunting cows (kept near full: the night costs ~7 food; from food 6
  down it walks up to ``FAR`` for one), exploring.
- Evening: early enough to be sealed in by ``DUSK`` (the walk to the pocket is measured), it
  drinks up (for a pocket without water, or one whose water a skeleton near will make it wall
  up), eats (walking up to 20 steps for a cow at food 5 or less; once on its way in, only a
  cow within ``WAYSIDE`` steps at food 6 or less), takes spare stones, and walls itself into a
  two-cell pocket (`collect.policies.crafter_pocket`) chosen for a short walk, a water wall to
  drink from inside, and few tunnel cells near (skeletons walk out of tunnels and shoot).
- Night: it sleeps, drinks or waits in the pocket and never leaves before ``DAWN`` (starving a
  while costs less than a crowd of zombies); a skeleton near makes it wall up the pocket's
  water (arrows fly over water). It digs out once no more than one zombie waits near.
- Any zombie within ``FIGHT_RADIUS`` is fought to the end before anything else, the one it
  faces first.

Measured (2,000-step episodes, `byog_env` Crafter 64x64): as `agents.narrate` plays (one policy
made with seed 0, env seeds 0-7 in order) all eight episodes live 2000 steps; with a policy made
per seed, seeds 0-7 live 2000, 2000, 2000, 2000, 2000, 1540, 2000, 2000 steps and held-out seeds
8-15 live 1251, 2000, 2000, 1566, 1280, 2000, 1623, 2000 (the old nights-only rule: 470-891 on
seeds 0-7). What still kills: food (a night in the pocket costs about 7 food and the ~90-step day
window must find about two cows; cows get scarce near home, as Crafter brings a grassy 12x12
chunk's cow back only with probability 0.01 every 10 steps, and a player that leaves at dawn
with food and drink near 0 meets zombies on the way to them), and skeletons' arrows near tunnels.

It plans on privileged state (the whole semantic map) like `crafter-scripted`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_cdt, uniform_filter

from collect.policies.crafter_pocket import (
    Cell,
    Pocket,
    _at,
    pocket_masks,
    sub,
    walk_distances,
)
from collect.policies.crafter_scripted import (
    _NEXT,
    _OBJ_IDS,
    DIRS,
    MAT,
    MAX_ITEM,
    MOVE_OF,
    OBJ,
    A,
    CrafterScriptedPolicy,
    _Progress,
)

#: Crafter's day length (steps); the timetable below is in steps of this cycle.
DAY = 300
#: Cycle step by which the player wants to be sealed in (daylight 0.84 falls at ~115).
DUSK = 118
#: Cycle step from which it may dig out (daylight >= 0.9 and rising: no zombie spawns, the
#: leftovers despawn).
DAWN = 12
#: Until this cycle step it stays in while a zombie waits near the pocket, unless it is fit
#: (a stone sword and HEALTHY health: it fights them at the door, one at a time).
LATE_DAWN = 50
#: Health with which the player (with a stone sword) digs out at DAWN past waiting zombies.
HEALTHY = 6
#: Steps of slack on top of the measured walk to the pocket (digging, sealing, a fight).
SLACK = 14
#: How far (walking steps) the player goes for a cow or water when in need.
FAR = 60
#: Walking steps a pocket's distance to water is worth (per cell).
WATER_WEIGHT = 2
#: Walking steps a pocket with a water wall is worth over one without (it saves night trips).
DRY_PENALTY = 60
#: Walking steps each path (tunnel) cell within 5 cells of a pocket costs it.
PATH_WEIGHT = 4
#: Walking steps the player turns aside for a cow on its way to the pocket (food low).
WAYSIDE = 5
#: Stones the player takes into the pocket (the seal, and walls over water against arrows).
SPARE_STONE = 4
#: How far (walking steps) a pocket is looked for.
POCKET_RADIUS = 45
#: Skeletons this close make the player wall up a pocket's water and keep its paths away.
SKELETON_RADIUS = 9
#: Zombies this close (Manhattan) are fought before anything else.
FIGHT_RADIUS = 4


class CrafterSurvivorPolicy(CrafterScriptedPolicy):
    """`crafter-scripted` on a day/night timetable, nights sealed in a stone pocket."""

    name = "crafter-survivor"

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        super().reset(obs, info)
        self._home: Pocket | None = None  # the pocket being made, or lived in
        self._sealed = False  # inside the home with its entrance walled
        self._leaving = False  # digging out: committed until the seal is gone
        self._eta = 0  # walking steps to the home (refreshed every few steps by day)
        self._eta_step = -DAY
        self._heading = False  # committed to tonight's pocket

    def _cycle(self) -> int:
        return self._step % DAY

    def _decide(self) -> int:
        if self._info.get("sleeping"):
            self._goal = "sleep in the shelter" if self._sealed else "sleep"
            return A["noop"]  # Crafter ignores actions until the player wakes
        if self._sealed:
            act = self._inside()
            if act is not None:
                return act
        for rule in (self._fight, self._evening, self._arm, self._drink_if_thirsty,
                     self._eat_if_hungry, self._progress, self._explore):
            act = rule()
            if act is not None:
                return act
        return A["noop"]  # pragma: no cover - _explore always returns

    # ------------------------------------------------------------------ day rules
    def _fight(self) -> int | None:
        """Hits an adjacent zombie or skeleton; walks up to a zombie within FIGHT_RADIUS (it
        comes anyway, and a fight left half-way costs another hit)."""
        ahead = self._ahead()
        for kind in ("zombie", "skeleton"):
            if self._sem[ahead] == OBJ[kind]:  # the one we face first: no turn, no switching
                self._goal = f"fight the {kind}"
                return A["do"]
            near = self._nearest_object(OBJ[kind], max_dist=1)
            if near is not None:
                self._goal = f"fight the {kind}"
                return self._face_and(near, A["do"])
        if self._nearest_object(OBJ["zombie"], max_dist=FIGHT_RADIUS) is None:
            return None
        self._goal = "fight the zombie"
        return self._interact_with({OBJ["zombie"]}, A["do"], radius=FIGHT_RADIUS + 2)

    def _arm(self) -> int | None:
        """Makes the swords (wood, then stone) before anything but fights and the night: a
        zombie takes 5 bare-handed hits, 3 with a wood sword, 2 with a stone one."""
        inv = self._inv
        sword = next((t for t in ("wood_sword", "stone_sword") if inv[t] == 0), None)
        if sword is None or min(inv["food"], inv["drink"]) <= 2 or inv["wood_pickaxe"] == 0:
            return None  # (the tech tree makes the first pickaxe and sword together)
        needs = {"wood": 1, "stone": 1 if sword == "stone_sword" else 0}
        if inv["wood"] < needs["wood"] or inv["stone"] < needs["stone"]:
            return None  # the tech tree collects them
        self._goal = f"make a {sword.replace('_', ' ')}"
        if self._near_material(MAT["table"], 1):
            return A[f"make_{sword}"]
        table = self._nearest_cell({MAT["table"]}, radius=20)
        if table is not None:
            act = self._step_towards(self._near_mask(MAT["table"]), max_dist=25)
            if act is not None:
                return act
        if inv["wood"] >= needs["wood"] + 2:  # wood for a new table (Crafter's costs 1-2)
            self._goal = "place a table"
            return self._place("table")
        return None

    def _drink_if_thirsty(self) -> int | None:
        drink = self._inv["drink"]
        if drink > (7 if self._cycle() >= 60 else 5) and not (self._goal.startswith("drink") and drink < MAX_ITEM):
            return None
        self._goal = "drink water"
        act = self._interact_with({MAT["water"]}, A["do"], radius=FAR)
        return self._explore() if act is None and drink <= 3 else act

    def _eat_if_hungry(self) -> int | None:
        food = self._inv["food"]
        # The night inside costs about 7 food: keep it topped up all day, full by the evening.
        if food > MAX_ITEM - (2 if self._cycle() >= 60 else 3) and not (self._goal.startswith("eat") and food < MAX_ITEM - 1):
            return None
        self._goal = "eat a cow"
        # Cows are few and slow to come back: walk far for one, and wander when none is
        # reachable and food runs low.
        act = self._interact_with({OBJ["cow"]}, A["do"], radius=FAR if food <= 6 else 30)
        return self._explore() if act is None and food <= 3 else act

    def _interact_with(self, ids: set[int], action: int, radius: int = 30,
                       only: set[Cell] | None = None) -> int | None:
        """The scripted walk-and-act, never mining the walls of the pocket it means to use."""
        if self._home is None or action != A["do"] or MAT["stone"] not in ids:
            return super()._interact_with(ids, action, radius, only)
        full = self._sem
        self._sem = full.copy()
        for w in self._home.walls():
            if self._in(w) and self._sem[w] == MAT["stone"]:
                self._sem[w] = MAT["table"]  # a wall, but not a target
        try:
            return super()._interact_with(ids, action, radius, only)
        finally:
            self._sem = full

    def _iron_and_diamond(self, ctx: _Progress) -> Any:
        return _NEXT  # iron and diamond lie in the skeletons' tunnels: stop at stone tools

    def _coal_and_sapling(self, ctx: _Progress) -> Any:
        if ctx.inv["coal"] < 1:
            self._goal = "collect coal"
            act = self._interact_with({MAT["coal"]}, A["do"], radius=8)
            if act is not None:
                return act
        return super()._coal_and_sapling(_Progress(
            inv={**ctx.inv, "coal": MAX_ITEM}, ach=ctx.ach, table_near=ctx.table_near,
            furnace_near=ctx.furnace_near, known_table=ctx.known_table))

    # ------------------------------------------------------------------ evening
    def _night_near(self) -> bool:
        """Whether it is time to head for the pocket (the walk there is measured)."""
        c = self._cycle()
        if c < DAWN or c >= DUSK:
            return True
        if c < DUSK - 60:
            return False
        if self._step - self._eta_step >= 5 or self._home is None:
            self._refresh_home()
        dry = self._home is not None and not self._wet(self._home) and self._inv["drink"] < MAX_ITEM
        return c + self._eta + SLACK + (15 if dry else 0) >= DUSK

    def _evening(self) -> int | None:
        inv = self._inv
        if not (self._night_near() or inv["energy"] <= 1):
            return None
        if inv["stone"] < 1 and inv["wood_pickaxe"] == 0:
            return None  # can neither seal (no stone) nor dig a pocket
        if self._home is None or not self._valid(self._home):
            self._refresh_home()
        if self._home is None:
            return None  # none reachable: the day rules go on (exploring finds stone)
        act = self._top_up()
        if act is None:
            self._heading = True  # this pocket it is, for tonight
            act = self._enter(self._home)
        return act

    def _top_up(self) -> int | None:
        """Drinks (for a dry pocket), eats and takes stones before the night: leaving at night
        kills. A top-up once started is finished before the next one."""
        pk = self._home
        if self._cycle() >= DUSK + 5 or pk is None:
            return None
        inv = self._inv
        wants = (
            ("drink water before the night", {MAT["water"]}, 25,
             inv["drink"] < (MAX_ITEM if self._goal.startswith("drink") else MAX_ITEM - 1)
             and not (self._wet(pk) and not self._skeletons_near(pk.b))),  # its water gets walled up
            # On the way (heading in), only a cow next to the path.
            ("eat before the night", {OBJ["cow"]}, WAYSIDE if self._heading else 12 if inv["food"] > 5 else 20,
             inv["food"] <= MAX_ITEM - (3 if self._heading else 2)),
            # The seal, and walls over water against arrows.
            ("mine stone for the night", {MAT["stone"]}, 8,
             inv["stone"] < SPARE_STONE and inv["wood_pickaxe"] > 0),
        )
        wants = sorted(wants, key=lambda w: w[0] != self._goal)  # the current one first
        for goal, ids, radius, want in wants:
            if want:
                self._goal = goal
                act = self._interact_with(ids, A["do"], radius=radius)
                if act is not None:
                    return act
        return None

    def _skeletons_near(self, c: Cell, radius: int = SKELETON_RADIUS + 4) -> bool:
        skeletons = np.argwhere(self._sem == OBJ["skeleton"])
        return bool(len(skeletons)) and bool((np.abs(skeletons - np.array(c)).sum(axis=1) <= radius).any())

    def _wet(self, pk: Pocket) -> bool:
        return any(self._in(w) and self._sem[w] == MAT["water"] for w in pk.walls())

    def _refresh_home(self) -> None:
        self._eta_step = self._step
        walk = walk_distances(self._ground(), self._pos, POCKET_RADIUS)
        if not self._heading or self._home is None or not self._valid(self._home):
            self._home = self._find_pocket(walk)  # the best pocket from here, until we head in
        if self._home is not None:
            d = walk[self._home.b] if self._pos not in (self._home.p, self._home.q) else 0
            self._eta = int(d) if d >= 0 else POCKET_RADIUS

    def _ground(self) -> np.ndarray:
        """The semantic map with the player's cell as free ground (it always stands on some)."""
        sem = self._sem.copy()
        sem[self._pos] = MAT["path"]
        return sem

    def _valid(self, pk: Pocket) -> bool:
        if self._pos in (pk.p, pk.q):
            return True  # our own cells: the pattern holds once we stand in it
        # The pattern reaches 3 cells from b: a crop 4 cells around it reads the same cells as the
        # whole map (the crop meets the world's edge only where the map does), at 1/50th the cost.
        x0, y0 = max(0, pk.b[0] - 4), max(0, pk.b[1] - 4)
        crop = self._ground()[x0:pk.b[0] + 5, y0:pk.b[1] + 5]
        masks = pocket_masks(crop, self._inv["wood_pickaxe"] > 0)
        return bool(masks[pk.d][pk.b[0] - x0, pk.b[1] - y0])

    def _find_pocket(self, walk: np.ndarray) -> Pocket | None:
        """The reachable pocket with the least walk there plus ``WATER_WEIGHT`` x its distance
        to water, less ``DRY_PENALTY`` for a water wall (drinking from inside)."""
        dig = self._inv["wood_pickaxe"] > 0
        ground = self._ground()
        dry, wet = pocket_masks(ground, dig), pocket_masks(ground, dig, water=True)
        if self._inv["stone"] < 1:  # the seal's stone must come from digging p or q
            stone = self._sem == MAT["stone"]
            for masks in (dry, wet):
                for d in masks:
                    masks[d] = masks[d] & (_at(stone, d[0], d[1], False) | _at(stone, 2 * d[0], 2 * d[1], False))
        any_b = np.logical_or.reduce([dry[d] | wet[d] for d in dry])
        any_wet = np.logical_or.reduce(list(wet.values()))
        water = distance_transform_cdt(self._sem != MAT["water"], metric="taxicab")
        # Tunnels (path) breed skeletons, which walk out and shoot over water: keep away.
        tunnels = uniform_filter((self._sem == MAT["path"]).astype(float), size=11, mode="constant") * 121
        cost = np.where(any_b & (walk >= 0), walk + WATER_WEIGHT * water + PATH_WEIGHT * tunnels, np.inf)
        cost = np.where(any_wet, cost - WATER_WEIGHT * water - DRY_PENALTY, cost)
        if not np.isfinite(cost).any():
            return None
        b = np.unravel_index(int(np.argmin(cost)), cost.shape)
        b = (int(b[0]), int(b[1]))
        d = next((d for d, m in wet.items() if m[b]), None) or next(d for d, m in dry.items() if m[b])
        return Pocket(b, d)

    def _enter(self, pk: Pocket) -> int | None:
        """The next step of walking to, digging, entering and sealing the pocket ``pk``."""
        pos, d = self._pos, pk.d
        self._goal = "go to a shelter"
        if pos in (pk.b, pk.p) and self._facing != (-d[0], -d[1]) or pos == pk.b:
            nxt = pk.p if pos == pk.b else pk.q
            if self._sem[nxt] == MAT["stone"]:
                self._goal = "dig a shelter"
                return self._face_and(nxt, A["do"])
            return A[MOVE_OF[d]]
        if pos == pk.p:  # came back from q: facing the entrance, seal it
            if self._sem[pk.b] in _OBJ_IDS:
                self._goal = "fight for the shelter"
                return A["do"]  # something stands in it: hit it (a cow is food)
            if self._inv["stone"] < 1:
                return None
            self._goal = "seal the shelter"
            self._sealed = True
            return A["place_stone"]
        if pos == pk.q:
            return A[MOVE_OF[(-d[0], -d[1])]]
        step = self._step_towards(lambda c: c == pk.b, max_dist=POCKET_RADIUS + 10)
        if step is None:
            self._home = None
        return step

    # ------------------------------------------------------------------ night
    def _inside(self) -> int | None:
        """Sealed in: drink, sleep or wait until morning, then dig out (None: out)."""
        pk = self._home
        assert pk is not None
        closed = self._sem[pk.b] == MAT["stone"]
        self._leaving = self._leaving or self._may_leave()
        if self._leaving:
            if closed:
                self._goal = "dig out of the shelter"
                if self._pos == pk.q:
                    return A[MOVE_OF[sub(pk.p, pk.q)]]
                return self._face_and(pk.b, A["do"])
            self._sealed = self._leaving = self._heading = False
            return None
        if not closed:  # the seal went: close it again (facing it from p), or start over
            if self._pos == pk.p and self._facing == sub(pk.b, pk.p) and self._inv["stone"] > 0 \
                    and self._sem[pk.b] not in _OBJ_IDS:
                self._goal = "seal the shelter"
                return A["place_stone"]
            self._sealed = False
            return None
        act = self._block_arrows(pk)
        if act is not None:
            return act
        if self._inv["drink"] < MAX_ITEM:
            act = self._drink_inside(pk)
            if act is not None:
                return act
        dawn = self._cycle() >= DAY - 25 or self._cycle() < DAWN
        if self._inv["energy"] < (MAX_ITEM - 3 if dawn else MAX_ITEM):  # no long sleep at dawn
            self._goal = "sleep in the shelter"
            return A["sleep"]
        self._goal = "wait in the shelter"
        return A["noop"]

    def _may_leave(self) -> bool:
        c = self._cycle()
        if not DAWN <= c < DUSK - 40 or self._inv["energy"] <= 2:
            return False
        zombies = np.argwhere(self._sem == OBJ["zombie"])
        b = np.array(self._home.b) if self._home is not None else np.array(self._pos)
        near = int((np.abs(zombies - b).sum(axis=1) <= 8).sum()) if len(zombies) else 0
        fit = self._inv["stone_sword"] > 0 and self._inv["health"] >= HEALTHY
        return near == 0 or (fit and near <= 1) or c >= LATE_DAWN

    def _block_arrows(self, pk: Pocket) -> int | None:
        """Walls up the pocket's water (or lava) sides when a skeleton is about: arrows fly
        over both."""
        if self._nearest_object(OBJ["skeleton"], max_dist=SKELETON_RADIUS) is None or self._inv["stone"] < 1:
            return None
        for cell in (self._pos, pk.q if self._pos == pk.p else pk.p):
            for d in DIRS.values():
                w = (cell[0] + d[0], cell[1] + d[1])
                if self._in(w) and self._sem[w] in (MAT["water"], MAT["lava"]):
                    self._goal = "wall up the shelter"
                    if cell == self._pos:
                        return self._face_and(w, A["place_stone"])  # not floor: moving turns
                    return A[MOVE_OF[sub(cell, self._pos)]]
        return None

    def _drink_inside(self, pk: Pocket) -> int | None:
        """Drinks from a water wall of the pocket (stepping to its other cell if that one has it)."""
        for cell in (self._pos, pk.q if self._pos == pk.p else pk.p):
            for d in DIRS.values():
                w = (cell[0] + d[0], cell[1] + d[1])
                if self._in(w) and self._sem[w] == MAT["water"]:
                    self._goal = "drink in the shelter"
                    if cell == self._pos:
                        return self._face_and(w, A["do"])  # water is no floor: moving only turns
                    return A[MOVE_OF[sub(cell, self._pos)]]
        return None


def make(arg: str | None, env: Any, seed: int | None) -> CrafterSurvivorPolicy:
    """Registry factory of `crafter-survivor`."""
    return CrafterSurvivorPolicy(env, seed=seed)


__all__ = ["CrafterSurvivorPolicy", "Cell", "Pocket", "make", "pocket_masks", "OBJ"]
