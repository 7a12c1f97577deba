"""crafter-survivor: the pocket geometry and sealing rules on hand-built maps, and long episodes."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("crafter")

from collect.policies.crafter_pocket import Pocket, pocket_masks  # noqa: E402
from collect.policies.crafter_scripted import ACTIONS, MAT, OBJ  # noqa: E402
from collect.policies.crafter_survivor import DAWN, DUSK, CrafterSurvivorPolicy  # noqa: E402

G, S, W = MAT["grass"], MAT["stone"], MAT["water"]


def stone_map(size: int = 9) -> np.ndarray:
    """A stone block with a three-cell grass corridor along row 4 from the left edge:
    (0..2, 4) grass, the rest stone. (1, 4)-(2, 4) is a natural pocket entered from b = (0, 4)."""
    sem = np.full((size, size), S, dtype=np.int64)
    sem[0:3, 4] = G
    return sem


def test_pocket_cells_and_walls():
    pk = Pocket(b=(0, 4), d=(1, 0))
    assert pk.p == (1, 4) and pk.q == (2, 4)
    assert sorted(pk.walls()) == [(1, 3), (1, 5), (2, 3), (2, 5), (3, 4)]  # all but b


def test_natural_pocket_found_without_digging():
    masks = pocket_masks(stone_map(), can_dig=False)
    assert masks[(1, 0)][0, 4]  # b = (0, 4), p = (1, 4), q = (2, 4): all walls stone
    assert not masks[(1, 0)][1, 4]  # from (1, 4), q = (3, 4) is stone and we cannot dig
    assert masks[(-1, 0)][2, 4]  # the same cells entered from the other end (the edge walls it)
    assert sum(int(m.sum()) for m in masks.values()) == 2


def test_digging_opens_pockets_into_stone():
    masks = pocket_masks(stone_map(), can_dig=True)
    assert masks[(1, 0)][1, 4] and masks[(1, 0)][2, 4]  # dig on along the corridor
    assert masks[(0, 1)][1, 4]  # or down into the stone from the corridor


def test_open_side_or_creature_breaks_a_pocket():
    sem = stone_map()
    sem[2, 5] = G  # a grass cell beside q: zombies walk in
    assert not pocket_masks(sem, can_dig=False)[(1, 0)][0, 4]
    sem = stone_map()
    sem[3, 4] = OBJ["zombie"]  # a creature is no wall
    assert not pocket_masks(sem, can_dig=False)[(1, 0)][0, 4]


def test_water_walls_only_count_when_asked():
    sem = stone_map()
    sem[3, 4] = W
    assert not pocket_masks(sem, can_dig=False)[(1, 0)][0, 4]  # arrows fly over water
    wet = pocket_masks(sem, can_dig=False, water=True)
    assert wet[(1, 0)][0, 4]
    assert not pocket_masks(stone_map(), can_dig=False, water=True)[(1, 0)][0, 4]  # no water


def info(sem: np.ndarray, pos, facing, **inv) -> dict:
    sem = sem.copy()
    sem[pos] = OBJ["player"]
    inventory = dict.fromkeys(("wood", "stone", "coal", "iron", "diamond", "sapling", "wood_pickaxe", "stone_pickaxe", "iron_pickaxe", "wood_sword", "stone_sword", "iron_sword"), 0)
    inventory.update(health=9, food=9, drink=9, energy=9)
    inventory.update(inv)
    return {"semantic": sem, "inventory": inventory, "player_pos": np.array(pos),
            "player_facing": np.array(facing), "achievements": {}, "sleeping": False}


def policy_at(step: int) -> CrafterSurvivorPolicy:
    pol = CrafterSurvivorPolicy(None, seed=0)
    pol.reset(None, {})
    pol._step = step
    return pol


def test_validity_check_on_a_crop_equals_the_whole_map():
    """`_valid` reads a crop around the pocket: the same answer as the whole map's masks, also at
    the world's edge."""
    rng = np.random.default_rng(0)
    ids = [MAT["grass"], MAT["stone"], MAT["water"], MAT["tree"], MAT["sand"], OBJ["cow"]]
    found = 0
    for dig in (0, 1):
        sem = rng.choice(ids, size=(20, 16), p=[0.2, 0.6, 0.1, 0.05, 0.03, 0.02]).astype(np.uint8)
        pol = policy_at(0)
        pol._sem, pol._pos, pol._inv = sem, (0, 0), {"wood_pickaxe": dig}
        whole = pocket_masks(pol._ground(), bool(dig))
        for d, mask in whole.items():
            for b in zip(*np.nonzero(np.ones_like(mask))):
                pk = Pocket((int(b[0]), int(b[1])), d)
                if pol._pos not in (pk.p, pk.q):
                    assert pol._valid(pk) == bool(mask[b]), (pk, dig)
        found += sum(int(m.sum()) for m in whole.values())
    assert found > 0  # some pockets exist: not only all-False against False


def test_enters_and_seals_the_pocket_at_night():
    sem = stone_map()
    pol = policy_at(DUSK + 40)
    # At b, facing into the corridor: step in, on to q, back to p (now facing b), seal.
    moves = []
    pos, facing = (0, 4), (1, 0)
    for _ in range(4):
        act = ACTIONS[pol.act(None, info(sem, pos, facing, stone=2, wood_pickaxe=1))]
        moves.append(act)
        if act.startswith("move_"):
            facing = {"move_right": (1, 0), "move_left": (-1, 0), "move_up": (0, -1), "move_down": (0, 1)}[act]
            pos = (pos[0] + facing[0], pos[1] + facing[1])
    assert moves == ["move_right", "move_right", "move_left", "place_stone"]
    assert pol._sealed and pol._home == Pocket((0, 4), (1, 0))


def sealed_policy(step: int, sem: np.ndarray) -> CrafterSurvivorPolicy:
    pol = policy_at(step)
    pol._home, pol._sealed = Pocket((0, 4), (1, 0)), True
    sem[0, 4] = S  # the seal
    return pol


def test_stays_in_at_night_even_hungry():
    sem = stone_map()
    pol = sealed_policy(DUSK + 100, sem)
    act = ACTIONS[pol.act(None, info(sem, (1, 4), (-1, 0), stone=1, food=1, energy=9))]
    assert act in ("noop", "sleep") and pol._sealed


def test_digs_out_in_the_morning():
    sem = stone_map()
    pol = sealed_policy(3 * 300 + DAWN + 5, sem)
    act = ACTIONS[pol.act(None, info(sem, (1, 4), (-1, 0), stone=1, stone_sword=1))]
    assert act == "do" and pol._leaving  # mines the seal it faces


def test_waits_while_zombies_crowd_the_door_at_dawn():
    sem = stone_map(12)
    sem[0:3, 4] = G
    sem[4, 6] = sem[5, 5] = OBJ["zombie"]  # two within 8 cells of the door
    pol = sealed_policy(DAWN + 2, sem)
    act = ACTIONS[pol.act(None, info(sem, (1, 4), (-1, 0), stone=1, stone_sword=1))]
    assert act in ("noop", "sleep") and not pol._leaving


def test_walls_up_water_when_a_skeleton_is_about():
    sem = stone_map(12)
    sem[0:3, 4] = G
    sem[1, 3] = W  # the water wall beside p
    sem[1, 0:3] = W
    sem[4, 1] = OBJ["skeleton"]
    pol = sealed_policy(DUSK + 60, sem)
    first = ACTIONS[pol.act(None, info(sem, (1, 4), (-1, 0), stone=2))]
    assert first == "move_up"  # turn to the water (not floor: no step)
    second = ACTIONS[pol.act(None, info(sem, (1, 4), (0, -1), stone=2))]
    assert second == "place_stone"


def wet_home_policy(skeleton: bool) -> tuple[CrafterSurvivorPolicy, np.ndarray]:
    """An evening policy whose home is a water-walled pocket, with a pond a few steps away."""
    sem = stone_map(16)
    sem[0:3, 4] = G
    sem[1, 3] = W  # the pocket's water wall
    sem[0, 5:12] = G  # a way down to the pond
    sem[0:4, 12:15] = W
    if skeleton:
        sem[6, 4] = OBJ["skeleton"]
    pol = policy_at(DUSK - 10)
    pol._home = Pocket((0, 4), (1, 0))
    return pol, sem


def test_top_up_drinks_for_a_wet_pocket_only_with_skeletons_near():
    for skeleton, want in ((True, "drink water before the night"), (False, None)):
        pol, sem = wet_home_policy(skeleton)
        pol.act(None, info(sem, (0, 8), (0, 1), stone=4, drink=6, wood_pickaxe=1))  # loads the state
        pol._home, pol._heading, pol._goal = Pocket((0, 4), (1, 0)), False, "start"
        assert pol._wet(pol._home) and pol._skeletons_near(pol._home.b) == skeleton
        act = pol._top_up()
        if want is None:
            assert act is None or not pol._goal.startswith("drink"), pol._goal
        else:
            assert act is not None and pol._goal == want


def test_walks_far_for_a_cow_when_food_is_at_six():
    sem = np.full((64, 64), G, dtype=np.int64)
    sem[40, 0] = OBJ["cow"]  # 40 steps away: beyond the 30 of a peckish player
    for food, moves in ((7, False), (6, True)):
        pol = policy_at(70)
        pol.act(None, info(sem, (0, 0), (0, 1), food=food, drink=9, wood_pickaxe=1, wood_sword=1, stone_sword=1))
        pol._goal = "start"
        act = pol._eat_if_hungry()
        assert (act is not None and pol._goal == "eat a cow") == moves, (food, act)


def test_eats_a_cow_beside_the_way_in_when_food_is_low():
    """Heading in (committed to tonight's pocket), it turns aside only for a cow within WAYSIDE
    steps, and only at food 6 or less."""
    from collect.policies.crafter_survivor import WAYSIDE

    for cow_y, food, eats in ((10, 6, True), (10, 7, False), (9 + WAYSIDE + 1, 5, False)):
        sem = stone_map(16)
        sem[0, 5:16] = G  # the way to the pocket at b = (0, 4)
        sem[0, cow_y] = OBJ["cow"]
        pol = policy_at(DUSK - 10)
        pol.act(None, info(sem, (0, 8), (0, -1), stone=4, food=food, wood_pickaxe=1))  # loads the state
        pol._home, pol._heading, pol._goal = Pocket((0, 4), (1, 0)), True, "go to a shelter"
        act = pol._top_up()
        assert (act is not None and pol._goal == "eat before the night") == eats, (cow_y, food, act, pol._goal)


def play(env, pol, seed: int, steps: int = 2000) -> int:
    obs, inf = env.reset(seed=seed)
    pol.reset(obs, inf)
    for t in range(steps):
        obs, _, term, trunc, inf = env.step(pol.act(obs, inf))
        if term or trunc:
            return t + 1
    return steps


@pytest.mark.slow
def test_narrate_loop_lives_every_episode():
    """As `python -m agents.narrate --policy crafter-survivor --episodes 8 --steps 2000` plays:
    one policy (seed 0) on the annotated env, env seeds 0..7 in order, a reset before each."""
    import byog_env
    from collect.policies import make_policy

    env = byog_env.make("crafter")
    pol = make_policy("crafter-survivor", env, seed=0)
    lengths = [play(env, pol, seed) for seed in range(8)]
    # The nights-only rule before the timetable lived 470-891 steps on these seeds.
    assert lengths == [2000] * 8, lengths
