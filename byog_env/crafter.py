"""Crafter as a gymnasium 1.x env with deterministic seeding, plus the Crafter score.

Upstream ``crafter.Env`` has two sources of seed nondeterminism (danijar/crafter issues 31 and
36), both fixed here by subclassing rather than forking:

1. ``engine.World`` keeps each chunk's objects in a ``set``; ``Env._balance_object`` lists a
   chunk's creatures from that set and picks one to despawn with the world RNG, so which
   creature vanishes depends on object hashes (memory addresses). ``_OrderedWorld`` keeps
   chunk members in insertion order instead.
2. ``LocalView._noise`` (night-time rendering noise) draws from the world RNG, so rendering
   changes the simulation (and an extra ``render()`` call would change the future).
   ``_LocalView`` draws the noise from its own RNG, reseeded from (seed, episode) every episode.

Resets also reuse generated worlds from a small cache keyed by the world seed (generation is
pure-Python noise, ~1 s); a cached world is restored exactly (map, creatures, RNG state).

With both fixed, the same seed and actions give the same frames, infos and annotations (tested
over hundreds of steps, across fresh env instances). Remaining caveat: world generation calls
``hash((seed, episode))``, which is stable for ints across processes (no string hashing).
"""
from __future__ import annotations

import collections
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from byog_env.errors import EnvError, EnvOptionError

ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant",
    "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe", "make_stone_sword",
    "make_wood_pickaxe", "make_wood_sword", "place_furnace", "place_plant", "place_stone",
    "place_table", "wake_up",
)
"""The 22 Crafter achievements, in crafter's own (alphabetical) order."""

ACTIONS: tuple[str, ...] = (
    "noop", "move_left", "move_right", "move_up", "move_down", "do", "sleep", "place_stone",
    "place_table", "place_furnace", "place_plant", "make_wood_pickaxe", "make_stone_pickaxe",
    "make_iron_pickaxe", "make_wood_sword", "make_stone_sword", "make_iron_sword",
)


def daylight(steps: Any) -> np.ndarray:
    """The daylight crafter draws an episode's frame at step ``steps`` with (1 day .. 0 night;
    below 0.5 its ``LocalView._light`` adds noise): crafter's ``Env._update_time``, a pure
    function of the step since reset.

    >>> [round(float(d), 3) for d in daylight([0, 60, 210])]
    [0.797, 1.0, 0.0]
    """
    progress = (np.asarray(steps, dtype=np.float64) / 300) % 1 + 0.3
    return 1 - np.abs(np.cos(np.pi * progress)) ** 3


def crafter_score(success_rates_percent: Any) -> float:
    """Crafter score: ``exp(mean_i log(1 + p_i)) - 1`` over achievement success rates in percent.

    Args:
        success_rates_percent: The 22 success rates (0..100), as a sequence or a dict by name.

    Raises:
        ValueError: Rates outside [0, 100] or an empty input.
    """
    if isinstance(success_rates_percent, dict):
        success_rates_percent = list(success_rates_percent.values())
    p = np.asarray(success_rates_percent, dtype=np.float64)
    if p.size == 0 or np.any(p < 0) or np.any(p > 100) or not np.all(np.isfinite(p)):
        raise EnvError(
            f"crafter_score needs success rates in percent within [0, 100]; got {p.tolist()}."
        )
    return float(np.exp(np.mean(np.log1p(p))) - 1.0)


class _OrderedSet:
    """Insertion-ordered set with the operations ``engine.World`` uses on chunk members."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[Any, None] = {}

    def add(self, obj: Any) -> None:
        self._items[obj] = None

    def remove(self, obj: Any) -> None:
        del self._items[obj]

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, obj: Any) -> bool:
        return obj in self._items


# Generated worlds by (world seed, area): world generation (pure-Python simplex noise) costs
# ~1 s, and fixed-seed resets (tests, evaluation, check_env) repeat it. Entries are small
# (a 64x64 uint8 map, the initial creatures, the RNG state after generation).
_WORLD_CACHE: dict[tuple, tuple] = {}
_WORLD_CACHE_SIZE = 64


def _simulator_classes():
    """Builds the deterministic crafter subclasses (crafter imported only when needed)."""
    import crafter
    from crafter import constants, engine, objects

    class _OrderedWorld(engine.World):
        def reset(self, seed=None):
            super().reset(seed)
            self._chunks = collections.defaultdict(_OrderedSet)

    class _LocalView(engine.LocalView):
        rng = np.random.RandomState(0)

        def _noise(self, canvas, amount, stddev):
            noise = self.rng.uniform(32, 127, canvas.shape[:2])[..., None]
            mask = amount * self._vignette(canvas.shape, stddev)[..., None]
            return (1 - mask) * canvas + mask * noise

    class DeterministicCrafter(crafter.Env):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._world = _OrderedWorld(self._area, constants.materials, (12, 12))
            grid = self._local_view._grid
            self._local_view = _LocalView(self._world, self._textures, grid)
            self._sem_view = engine.SemanticView(self._world, self._sem_view_types)

        _sem_view_types: ClassVar[list] = [
            crafter.objects.Player, crafter.objects.Cow, crafter.objects.Zombie,
            crafter.objects.Skeleton, crafter.objects.Arrow, crafter.objects.Plant,
        ]

        def reset(self):
            # Upstream Env.reset, plus a cache of generated worlds and a seeded render noise.
            self._episode += 1
            self._step = 0
            world_seed = hash((self._seed, self._episode)) % (2**31 - 1)
            self._world.reset(seed=world_seed)
            self._local_view.rng = np.random.RandomState([world_seed, 0x6E6F6973])
            self._update_time()
            center = (self._world.area[0] // 2, self._world.area[1] // 2)
            self._player = objects.Player(self._world, center)
            self._last_health = self._player.health
            self._world.add(self._player)
            self._unlocked = set()
            _generate_world(self._world, self._player, world_seed)
            return self._obs()

    return DeterministicCrafter


def _generate_world(world: Any, player: Any, world_seed: int) -> None:
    """Fills a freshly reset ``world`` around ``player`` exactly as crafter's world generation
    does for ``world_seed``, from :data:`_WORLD_CACHE` when this seed and area were generated
    before (the oldest entry is dropped beyond :data:`_WORLD_CACHE_SIZE`)."""
    from crafter import worldgen

    key = (world_seed, tuple(world.area))
    snapshot = _WORLD_CACHE.get(key)
    if snapshot is None:
        worldgen.generate_world(world, player)
        _WORLD_CACHE[key] = _snapshot_world(world, player)
        while len(_WORLD_CACHE) > _WORLD_CACHE_SIZE:
            _WORLD_CACHE.pop(next(iter(_WORLD_CACHE)))
    else:
        _restore_world(world, player, snapshot)


def _snapshot_world(world: Any, player: Any) -> tuple:
    """What generation left behind: the material map, each creature's type and position, and
    the world RNG's state, so a restored world continues the same random stream."""
    creatures = [(type(o), o.pos.copy()) for o in world.objects if o is not player]
    return world._mat_map.copy(), creatures, world.random.get_state()


def _restore_world(world: Any, player: Any, snapshot: tuple) -> None:
    """Puts a :func:`_snapshot_world` back into a freshly reset ``world`` (zombies and
    skeletons are built with the player they chase, other creatures without)."""
    from crafter import objects

    mat_map, creatures, rng_state = snapshot
    world._mat_map[...] = mat_map
    for cls, pos in creatures:
        world.add(cls(world, pos, player) if cls in (objects.Zombie, objects.Skeleton)
                  else cls(world, pos))
    world.random.set_state(rng_state)


class CrafterEnv(gym.Env):
    """Crafter with the gymnasium 1.x API and an RGB observation.

    Args:
        size: Frame side in pixels (observation ``uint8 [size, size, 3]``).
        length: Episode length limit (steps) after which the episode is truncated.
        reward: Whether to return Crafter's reward (otherwise 0).
        render_mode: ``"rgb_array"`` or ``None``; ``render()`` returns the last frame.
        seed: Default seed for the first ``reset()`` that passes none.

    ``terminated`` is True on death (Crafter's ``discount == 0``), ``truncated`` at ``length``.
    ``reset(seed=s)`` restarts the simulator with seed ``s`` (as a new ``crafter.Env(seed=s)``
    would: same worlds, same dynamics); a later ``reset()`` without a
    seed starts the simulator's next episode. Info keys: ``inventory``, ``achievements``
    (dicts), ``semantic`` (``uint8 [64, 64]`` ids, see ``annotators.crafter.SEMANTIC_NAMES``),
    ``player_pos`` and ``player_facing`` (``int64 [2]``), ``sleeping`` (bool), ``discount``,
    ``reward`` (Crafter's unmasked reward).
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self, size: int = 64, length: int = 10_000, reward: bool = True,
        render_mode: str | None = "rgb_array", seed: int | None = None,
    ) -> None:
        if int(size) < 9:
            raise EnvOptionError(f"Crafter frame size must be at least 9 pixels; got size={size}.")
        if int(length) < 1:
            raise EnvOptionError(f"Crafter episode length must be positive; got length={length}.")
        if render_mode not in (None, "rgb_array"):
            raise EnvOptionError(f"Crafter supports render_mode='rgb_array' or None; got {render_mode!r}.")
        self.size, self.length, self.reward = int(size), int(length), bool(reward)
        self.render_mode = render_mode
        self._default_seed = seed
        self._sim_cls = _simulator_classes()
        self._sim = None
        self._frame: np.ndarray | None = None
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))

    @property
    def simulator(self):
        """The underlying (deterministic) ``crafter.Env``; ``None`` before the first reset."""
        return self._sim

    def _build(self, seed: int) -> None:
        """Starts the simulator afresh with ``seed``.

        Same as constructing a new ``crafter.Env(seed=seed)`` (reset re-creates the world,
        player and counters; nothing else carries over), but keeps the loaded textures.
        """
        if self._sim is None:
            self._sim = self._sim_cls(
                size=(self.size, self.size), length=self.length, reward=self.reward, seed=seed
            )
        self._sim._seed, self._sim._episode = seed, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or self._sim is None:
            if seed is None:
                seed = (self._default_seed if self._default_seed is not None
                        else int(self.np_random.integers(0, 2**31 - 1)))
            self._build(int(seed))
        obs = self._sim.reset()
        self._frame = obs
        info = self._info(discount=1.0, reward=0.0)
        return obs.copy(), info

    def step(self, action):
        if self._sim is None:
            raise gym.error.ResetNeeded("Call reset() before step() on CrafterEnv.")
        obs, reward, done, raw = self._sim.step(int(action))
        self._frame = obs
        terminated = raw["discount"] == 0
        truncated = bool(done and not terminated)
        info = self._info(discount=float(raw["discount"]), reward=float(raw["reward"]),
                          semantic=raw["semantic"])
        return obs.copy(), float(reward), bool(terminated), truncated, info

    def _info(self, discount: float, reward: float, semantic: np.ndarray | None = None) -> dict:
        player = self._sim._player
        if semantic is None:
            semantic = self._sim._sem_view()
        return {
            "inventory": dict(player.inventory),
            "achievements": dict(player.achievements),
            "semantic": np.array(semantic, dtype=np.uint8),  # [64, 64] material/object ids
            "player_pos": np.array(player.pos, dtype=np.int64),
            "player_facing": np.array(player.facing, dtype=np.int64),
            "sleeping": bool(player.sleeping),
            "discount": discount,
            "reward": reward,
        }

    def get_action_meanings(self) -> list[str]:
        """The 17 action names, index = action (the Atari/ALE convention)."""
        return list(ACTIONS)

    def render(self):
        if self.render_mode is None:
            return None
        if self._frame is None:
            raise gym.error.ResetNeeded("Call reset() before render() on CrafterEnv.")
        return self._frame.copy()


def make_crafter(**kwargs: Any) -> gym.Env:
    """Annotated Crafter (the ``byog/Crafter-v0`` entry point); kwargs go to :class:`CrafterEnv`.

    ``max_episode_steps`` is accepted as an alias of ``length``.
    """
    from byog_env.annotators.crafter import CrafterAnnotator
    from byog_env.wrappers import AnnotatedEnv

    if "max_episode_steps" in kwargs:
        kwargs["length"] = kwargs.pop("max_episode_steps")
    return AnnotatedEnv(CrafterEnv(**kwargs), CrafterAnnotator())
