"""`crafter-scripted`: a rule-based Crafter agent that plans on the semantic map.

The agent reads `info["semantic"]` (the world's material/object id map, ids as Crafter's
`engine.SemanticView` assigns them), `info["inventory"]`, `info["player_pos"]` and, when the env
exposes it, `info["player_facing"]` (otherwise the facing is inferred from the last move action:
Crafter turns the player on every move, even a blocked one). Each step it picks the most urgent
goal — fight an adjacent zombie/skeleton, flee at low health, drink, eat, sleep in a sheltered
spot — and otherwise the next step of the achievement tree (wood → table → wooden tools → stone →
stone tools → coal → furnace → iron → iron tools → diamond, plus saplings and plants), and
reaches it with breadth-first search over walkable cells to the nearest cell from which the
target can be faced.

It uses privileged state (the whole semantic map), so it is a data-generating expert, not an
agent that learns from pixels.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from collect.policies.base import Policy, PolicyError

try:  # Crafter's own tables, so ids and recipes stay in sync with the installed version.
    from crafter import constants as _C
except ImportError as exc:  # pragma: no cover - crafter is a core dependency
    raise PolicyError('crafter-scripted needs crafter: pip install "crafter>=1.8.3".') from exc

ACTIONS: list[str] = list(_C.actions)
A = {name: i for i, name in enumerate(ACTIONS)}
#: Material and object ids exactly as `crafter.engine.SemanticView` assigns them.
MAT = {name: i for i, name in enumerate([None, *_C.materials]) if name is not None}
_OBJECTS = ("player", "cow", "zombie", "skeleton", "arrow", "plant")
OBJ = {name: len(MAT) + 1 + i for i, name in enumerate(_OBJECTS)}
WALKABLE_IDS = np.array([MAT[m] for m in _C.walkable])  # grass, path, sand (never lava)
DIRS: dict[str, tuple[int, int]] = {
    "move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1),
}
MOVE_OF = {d: a for a, d in DIRS.items()}
MAX_ITEM = 9


def _place_cost(name: str) -> dict[str, int]:
    return dict(_C.place[name]["uses"])


def _make_cost(name: str) -> dict[str, int]:
    return dict(_C.make[name]["uses"])


_NEXT = object()
"""A `_progress` stage's answer "nothing to decide here, ask the next stage"."""


@dataclass
class _Progress:
    """What the tech-tree stages of `_progress` share for one step."""

    inv: dict[str, int]
    ach: dict[str, int]
    table_near: bool
    furnace_near: bool
    known_table: tuple[int, int] | None

    def can(self, cost: dict[str, int]) -> bool:
        return all(self.inv.get(k, 0) >= v for k, v in cost.items())


class CrafterScriptedPolicy(Policy):
    """Rule-based Crafter agent (see module docstring).

    Args:
        env: The Crafter env (gymnasium `byog_env` Crafter or raw `crafter.Env`); only its
            action space is checked (17 discrete actions).
        seed: Seed of the exploration choices.
        explore_radius: Radius of the random waypoints used when no target is reachable.
    """

    name = "crafter-scripted"

    def __init__(self, env: Any = None, seed: int | None = None, explore_radius: int = 12) -> None:
        n = getattr(getattr(env, "action_space", None), "n", None) if env is not None else 17
        if n is not None and int(n) != len(ACTIONS):
            raise PolicyError(
                f"crafter-scripted needs a Crafter env with {len(ACTIONS)} discrete actions, got"
                f" action space {getattr(env, 'action_space', None)}; use --env crafter or another"
                " policy (e.g. random)."
            )
        self.explore_radius = explore_radius
        self.seed(seed)
        self.reset(None, {})

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ episode state
    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        self._facing = (0, 1)  # Crafter's player starts facing down.
        self._last_action: int | None = None
        self._sleeping = False
        self._last_health: int | None = None
        self._waypoint: tuple[int, int] | None = None
        self._waypoint_steps = 0
        self._plants: dict[tuple[int, int], int] = {}  # position -> step it was placed
        self._step = 0
        self._goal = "start"
        self._shelter_step = 0

    def observe(self, action_taken: Any) -> None:
        self._last_action = int(action_taken)

    def intent(self) -> list[str]:
        return [self._goal]

    # ------------------------------------------------------------------ acting
    def act(self, obs: Any, info: dict[str, Any]) -> int:
        if "semantic" not in info or "inventory" not in info or "player_pos" not in info:
            raise PolicyError(
                "crafter-scripted needs info['semantic'], info['inventory'] and"
                " info['player_pos'] from a Crafter env; use --env crafter."
            )
        self._update_facing(info)
        self._sem = np.asarray(info["semantic"])
        self._inv = info["inventory"]
        self._pos = (int(info["player_pos"][0]), int(info["player_pos"][1]))
        self._ach = info.get("achievements", {})
        self._info = info
        action = self._decide()
        self._last_action = action
        self._last_health = self._inv["health"]
        self._step += 1
        return action

    def _update_facing(self, info: dict[str, Any]) -> None:
        if "player_facing" in info:
            self._facing = (int(info["player_facing"][0]), int(info["player_facing"][1]))
        elif self._last_action is not None and not self._sleeping:
            name = ACTIONS[self._last_action]
            if name in DIRS:
                self._facing = DIRS[name]

    def _decide(self) -> int:
        inv = self._inv
        hurt = self._last_health is not None and inv["health"] < self._last_health
        if "sleeping" in self._info:  # the env says whether the player sleeps: trust it
            self._sleeping = bool(self._info["sleeping"]) or (
                self._sleeping and self._last_action == A["sleep"] and not hurt)
        if self._sleeping:
            if inv["energy"] < MAX_ITEM and not hurt:
                self._goal = "sleep until rested"
                return A["sleep"]
            self._sleeping = False
        for rule in (
            self._defend, self._drink_if_thirsty, self._eat_if_hungry, self._rest_if_tired,
            self._progress, self._explore,
        ):
            action = rule()
            if action is not None:
                return action
        return A["noop"]  # pragma: no cover - _explore always returns

    # ------------------------------------------------------------------ survival rules
    def _defend(self) -> int | None:
        for kind in ("zombie", "skeleton"):
            near = self._nearest_object(OBJ[kind], max_dist=1)
            if near is not None and (self._inv["health"] > 2 or kind == "skeleton"):
                self._goal = f"fight the {kind}"
                return self._face_and(near, A["do"])
        zombie = self._nearest_object(OBJ["zombie"], max_dist=3)
        if zombie is not None and self._inv["health"] <= 3:
            self._goal = "flee from the zombie"
            return self._flee(zombie)
        return None

    def _drink_if_thirsty(self) -> int | None:
        if self._inv["drink"] > 4 and not (self._goal.startswith("drink") and self._inv["drink"] < MAX_ITEM):
            return None
        self._goal = "drink water"
        return self._interact_with({MAT["water"]}, A["do"])

    def _eat_if_hungry(self) -> int | None:
        if self._inv["food"] > 4 and not (self._goal.startswith("eat") and self._inv["food"] < 7):
            return None
        self._goal = "eat a cow"
        return self._interact_with({OBJ["cow"]}, A["do"])

    def _rest_if_tired(self) -> int | None:
        tired = self._inv["energy"] <= 2 or (self._goal.startswith("find shelter") and self._inv["energy"] < 4)
        if not tired:
            return None
        self._goal = "find shelter to sleep"
        blocked = self._blocked_neighbours(self._pos)
        ahead = self._ahead()
        if self._inv["stone"] > 0 and self._placeable(ahead, "stone") and not self._is_water_or_lava(ahead):
            return A["place_stone"]  # wall off the open side we face
        self._shelter_step += 1
        zombie_near = self._nearest_object(OBJ["zombie"], max_dist=6) is not None
        if blocked >= 3 or (self._shelter_step > 40 and not zombie_near):
            self._sleeping = True
            self._shelter_step = 0
            self._goal = "sleep until rested"
            return A["sleep"]
        # Walk to the nearest cell with at least three blocked sides (tunnels, corners).
        mask = self._shelter_mask()
        step = self._step_towards(lambda p: bool(mask[p]))
        if step is not None:
            return step
        self._sleeping = True
        return A["sleep"]

    # ------------------------------------------------------------------ achievement tree
    def _progress(self) -> int | None:
        """Works up the tech tree: the first stage that decides returns its action (``None``:
        nothing to do, explore); a stage returns ``_NEXT`` to hand over to the next one."""
        ctx = _Progress(
            inv=self._inv, ach=self._ach,
            table_near=self._near_material(MAT["table"], 1),
            furnace_near=self._near_material(MAT["furnace"], 1),
            known_table=self._nearest_cell({MAT["table"]}, radius=10),
        )
        for stage in (self._craft_at_station, self._eat_ripe_plant, self._wood_and_table,
                      self._stone_and_furnace, self._coal_and_sapling, self._iron_and_diamond,
                      self._stock_up):
            act = stage(ctx)
            if act is not _NEXT:
                return act
        return None

    def _craft_at_station(self, ctx: _Progress) -> Any:
        inv = ctx.inv
        if not ctx.table_near:
            return _NEXT
        for tool in ("wood_pickaxe", "wood_sword", "stone_pickaxe", "stone_sword"):
            if inv[tool] == 0 and ctx.can(_make_cost(tool)):
                self._goal = f"make a {tool.replace('_', ' ')}"
                return A[f"make_{tool}"]
        if ctx.furnace_near:
            for tool in ("iron_pickaxe", "iron_sword"):
                if inv[tool] == 0 and ctx.can(_make_cost(tool)):
                    self._goal = f"make an {tool.replace('_', ' ')}"
                    return A[f"make_{tool}"]
        return _NEXT

    def _eat_ripe_plant(self, ctx: _Progress) -> Any:
        ripe = [p for p, t in self._plants.items() if self._step - t > 320]
        for p in ripe:
            if self._sem[p] != OBJ["plant"]:
                del self._plants[p]
        ripe = [p for p in ripe if p in self._plants]
        if ripe:
            self._goal = "eat the ripe plant"
            act = self._interact_with({OBJ["plant"]}, A["do"], only=set(ripe))
            if act is not None:
                return act
        return _NEXT

    def _wood_and_table(self, ctx: _Progress) -> Any:
        inv, known_table = ctx.inv, ctx.known_table
        want_wood = 0
        if known_table is None:
            want_wood += _place_cost("table")["wood"]
        want_wood += sum(
            _make_cost(t).get("wood", 0)
            for t in ("wood_pickaxe", "wood_sword", "stone_pickaxe", "stone_sword")
            if inv[t] == 0
        )
        if inv["wood"] < min(want_wood, MAX_ITEM):
            self._goal = "collect wood"
            return self._interact_with({MAT["tree"]}, A["do"])
        if known_table is None and ctx.can(_place_cost("table")):
            self._goal = "place a table"
            return self._place("table")
        needs_table = (inv["wood_pickaxe"] == 0 or inv["wood_sword"] == 0) or (
            inv["stone"] >= 1 and (inv["stone_pickaxe"] == 0 or inv["stone_sword"] == 0)
        )
        if needs_table and known_table is not None and not ctx.table_near:
            self._goal = "go to the table"
            return self._step_towards(self._near_mask(MAT["table"]))
        if inv["wood_pickaxe"] == 0:
            return None
        return _NEXT

    def _stone_and_furnace(self, ctx: _Progress) -> Any:
        inv, ach = ctx.inv, ctx.ach
        want_stone = sum(
            _make_cost(t).get("stone", 0) for t in ("stone_pickaxe", "stone_sword") if inv[t] == 0
        )
        if not ach.get("place_furnace"):
            want_stone += _place_cost("furnace")["stone"]
        if not ach.get("place_stone"):
            want_stone += 1
        if inv["stone"] < min(want_stone, MAX_ITEM):
            self._goal = "mine stone"
            act = self._interact_with({MAT["stone"], MAT["coal"]}, A["do"])
            if act is not None:
                return act
        if not ach.get("place_stone") and inv["stone"] > 0:
            self._goal = "place a stone"
            return self._place("stone")
        if not ach.get("place_furnace") and ctx.can(_place_cost("furnace")):
            if ctx.table_near:
                self._goal = "place a furnace"
                return self._place("furnace")
            if ctx.known_table is not None:
                self._goal = "go to the table"
                return self._step_towards(self._near_mask(MAT["table"]))
            self._goal = "place a table"
            if ctx.can(_place_cost("table")):
                return self._place("table")
        return _NEXT

    def _coal_and_sapling(self, ctx: _Progress) -> Any:
        inv, ach = ctx.inv, ctx.ach
        if inv["coal"] < 2:
            self._goal = "collect coal"
            act = self._interact_with({MAT["coal"]}, A["do"], radius=16)
            if act is not None:
                return act
        want_sapling = not ach.get("collect_sapling") or (
            inv["sapling"] == 0 and not ach.get("place_plant"))
        if want_sapling and self._sem[self._ahead()] == MAT["grass"]:
            self._goal = "collect a sapling"
            return A["do"]
        if inv["sapling"] > 0 and len(self._plants) < 2:
            ahead = self._ahead()
            if self._sem[ahead] == MAT["grass"]:
                self._goal = "plant a sapling"
                self._plants[ahead] = self._step
                return A["place_plant"]
        return _NEXT

    def _iron_and_diamond(self, ctx: _Progress) -> Any:
        inv, known_table = ctx.inv, ctx.known_table
        if inv["stone_pickaxe"] > 0 and inv["iron"] < 2:
            self._goal = "collect iron"
            act = self._interact_with({MAT["iron"]}, A["do"], radius=20)
            if act is not None:
                return act
        if inv["iron_pickaxe"] > 0:
            self._goal = "collect diamond"
            act = self._interact_with({MAT["diamond"]}, A["do"], radius=25)
            if act is not None:
                return act
        if inv["iron"] > 0 and inv["coal"] > 0 and (inv["iron_pickaxe"] == 0 or inv["iron_sword"] == 0):
            if known_table is not None and self._nearest_cell({MAT["furnace"]}, radius=10):
                mask = self._near_mask(MAT["table"]) & self._near_mask(MAT["furnace"])
                if mask.any():
                    self._goal = "go to the table and furnace"
                    act = self._step_towards(mask)
                    if act is not None:
                        return act
            elif inv["stone"] >= _place_cost("furnace")["stone"] and known_table is not None:
                self._goal = "go to the table"
                return self._step_towards(self._near_mask(MAT["table"]))
        return _NEXT

    def _stock_up(self, ctx: _Progress) -> Any:
        for item, targets, goal in (("wood", {MAT["tree"]}, "collect wood"),
                                    ("stone", {MAT["stone"]}, "mine stone")):
            if ctx.inv[item] < 5:
                self._goal = goal
                act = self._interact_with(targets, A["do"], radius=8)
                if act is not None:
                    return act
        if ctx.inv["food"] < MAX_ITEM - 2:
            self._goal = "hunt a cow"
            act = self._interact_with({OBJ["cow"]}, A["do"], radius=8)
            if act is not None:
                return act
        return None

    def _explore(self) -> int:
        self._goal = "explore"
        if self._waypoint is None or self._pos == self._waypoint or self._waypoint_steps > 40:
            self._waypoint = self._pick_waypoint()
            self._waypoint_steps = 0
        self._waypoint_steps += 1
        if self._waypoint is not None:
            wp = self._waypoint
            step = self._step_towards(lambda p: p == wp, max_nodes=1500)
            if step is not None:
                return step
            self._waypoint = None
        safe = [a for a, d in DIRS.items() if self._walkable((self._pos[0] + d[0], self._pos[1] + d[1]))]
        if safe:
            return A[safe[int(self._rng.integers(len(safe)))]]
        return A["do"]  # boxed in: dig or chop our way out

    def _pick_waypoint(self) -> tuple[int, int] | None:
        xs, ys = np.nonzero(np.isin(self._sem, WALKABLE_IDS))
        d = np.abs(xs - self._pos[0]) + np.abs(ys - self._pos[1])
        ok = np.nonzero((d >= self.explore_radius // 2) & (d <= self.explore_radius))[0]
        if len(ok) == 0:
            return None
        i = int(ok[self._rng.integers(len(ok))])
        return (int(xs[i]), int(ys[i]))

    # ------------------------------------------------------------------ helpers: map queries
    def _in(self, p: tuple[int, int]) -> bool:
        return 0 <= p[0] < self._sem.shape[0] and 0 <= p[1] < self._sem.shape[1]

    def _walkable(self, p: tuple[int, int]) -> bool:
        return self._in(p) and bool(np.isin(self._sem[p], WALKABLE_IDS))

    def _ahead(self) -> tuple[int, int]:
        p = (self._pos[0] + self._facing[0], self._pos[1] + self._facing[1])
        return p if self._in(p) else self._pos

    def _is_water_or_lava(self, p: tuple[int, int]) -> bool:
        return int(self._sem[p]) in (MAT["water"], MAT["lava"])

    def _placeable(self, p: tuple[int, int], what: str) -> bool:
        where = {MAT[m] for m in _C.place[what]["where"]}
        return p != self._pos and int(self._sem[p]) in where

    def _blocked_neighbours(self, p: tuple[int, int]) -> int:
        return sum(not self._walkable((p[0] + d[0], p[1] + d[1])) for d in DIRS.values())

    def _shelter_mask(self) -> np.ndarray:
        walk = np.isin(self._sem, WALKABLE_IDS)
        pad = np.pad(walk, 1, constant_values=False)
        free = pad[:-2, 1:-1].astype(int) + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:]
        return walk & (free <= 1)

    def _near_mask(self, material: int) -> np.ndarray:
        """Cells whose 3x3 neighbourhood contains `material` (Crafter's `nearby` for crafting)."""
        m = np.pad(self._sem == material, 1, constant_values=False)
        out = np.zeros_like(self._sem, dtype=bool)
        h, w = self._sem.shape
        for dx in (0, 1, 2):
            for dy in (0, 1, 2):
                out |= m[dx:dx + h, dy:dy + w]
        return out

    def _near_material(self, material: int, dist: int) -> bool:
        x, y = self._pos
        region = self._sem[max(0, x - dist): x + dist + 1, max(0, y - dist): y + dist + 1]
        return bool((region == material).any())

    def _nearest_cell(self, ids: set[int], radius: int) -> tuple[int, int] | None:
        xs, ys = np.nonzero(np.isin(self._sem, list(ids)))
        if len(xs) == 0:
            return None
        d = np.abs(xs - self._pos[0]) + np.abs(ys - self._pos[1])
        i = int(np.argmin(d))
        return (int(xs[i]), int(ys[i])) if d[i] <= radius else None

    def _nearest_object(self, obj_id: int, max_dist: int) -> tuple[int, int] | None:
        return self._nearest_cell({obj_id}, radius=max_dist)

    # ------------------------------------------------------------------ helpers: movement
    def _face_and(self, target: tuple[int, int], action: int) -> int:
        """Faces the adjacent `target` (a blocked cell: turning never moves) and acts on it."""
        d = (target[0] - self._pos[0], target[1] - self._pos[1])
        if d == self._facing:
            return action
        return A[MOVE_OF[d]] if d in MOVE_OF else action

    def _flee(self, threat: tuple[int, int]) -> int:
        best, best_d = None, -1
        for name, d in DIRS.items():
            p = (self._pos[0] + d[0], self._pos[1] + d[1])
            if self._walkable(p) and self._sem[p] not in _OBJ_IDS:
                dist = abs(p[0] - threat[0]) + abs(p[1] - threat[1])
                if dist > best_d:
                    best, best_d = name, dist
        return A[best] if best else A["do"]

    def _interact_with(
        self, ids: set[int], action: int, radius: int = 30, only: set[tuple[int, int]] | None = None
    ) -> int | None:
        """Walks next to the nearest reachable cell with an id in `ids`, faces it and acts."""
        target = np.isin(self._sem, list(ids))
        if only is not None:
            keep = np.zeros_like(target)
            for p in only:
                keep[p] = True
            target &= keep
        if not target.any():
            return None
        for d in DIRS.values():
            p = (self._pos[0] + d[0], self._pos[1] + d[1])
            if self._in(p) and target[p]:
                return self._face_and(p, action)
        pad = np.pad(target, 1, constant_values=False)
        adjacent = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
        return self._step_towards(adjacent, max_dist=radius)

    def _place(self, what: str) -> int:
        """Places `what` on the faced cell, or moves to face a valid cell."""
        ahead = self._ahead()
        free = self._placeable(ahead, what) and self._sem[ahead] not in _OBJ_IDS
        if free and (what == "stone" or not self._is_water_or_lava(ahead)):
            return A[f"place_{what}"]
        options = [
            n for n, d in DIRS.items()
            if self._walkable((self._pos[0] + d[0], self._pos[1] + d[1]))
        ]
        if options:
            return A[options[int(self._rng.integers(len(options)))]]
        return A["do"]

    def _step_towards(
        self,
        goal: np.ndarray | Callable[[tuple[int, int]], bool],
        max_dist: int = 40,
        max_nodes: int = 4096,
    ) -> int | None:
        """First move of a shortest walkable path from the player to a goal cell (BFS).

        Returns None when no goal cell is reachable within `max_dist` steps.
        """
        is_goal = (lambda p: bool(goal[p])) if isinstance(goal, np.ndarray) else goal
        start = self._pos
        if is_goal(start):
            return None
        walk = np.isin(self._sem, WALKABLE_IDS)
        first: dict[tuple[int, int], int | None] = {start: None}
        frontier = deque([(start, 0)])
        dirs = list(DIRS.items())
        while frontier and len(first) < max_nodes:
            p, dist = frontier.popleft()
            if dist >= max_dist:
                continue
            for name, d in dirs:
                q = (p[0] + d[0], p[1] + d[1])
                if q in first or not self._in(q) or not walk[q]:
                    continue
                first[q] = A[name] if first[p] is None else first[p]
                if is_goal(q):
                    return first[q]
                frontier.append((q, dist + 1))
        return None


_OBJ_IDS = set(OBJ.values())


def make(arg: str | None, env: Any, seed: int | None) -> CrafterScriptedPolicy:
    """Registry factory of `crafter-scripted`."""
    return CrafterScriptedPolicy(env, seed=seed)
