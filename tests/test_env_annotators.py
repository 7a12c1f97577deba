"""Annotator outputs pinned on crafted infos (no simulator), for every event kind."""
import numpy as np
import pytest

from byog_env import parse_event
from byog_env.annotators import (
    CrafterAnnotator,
    GenericAnnotator,
    MineRLAnnotator,
    MiniGridAnnotator,
    info_from_inventory,
    minerl_info,
)
from byog_env.annotators.crafter import SEMANTIC_IDS
from byog_env.crafter import ACHIEVEMENTS

ITEMS = ["health", "food", "drink", "energy", "sapling", "wood", "stone", "coal", "iron",
         "diamond", "wood_pickaxe", "stone_pickaxe", "iron_pickaxe", "wood_sword", "stone_sword",
         "iron_sword"]
POS = np.array([32, 32])


def crafter_info(inv=None, ach=None, things=(), facing=(0, 1), sleeping=False, discount=1.0):
    """Grass world, player at POS; `things` = [(name, dx, dy)] placed relative to the player."""
    sem = np.full((64, 64), SEMANTIC_IDS["grass"], np.uint8)
    sem[tuple(POS)] = SEMANTIC_IDS["player"]
    for thing, dx, dy in things:
        sem[POS[0] + dx, POS[1] + dy] = SEMANTIC_IDS[thing]
    inventory = {k: (9 if k in ("health", "food", "drink", "energy") else 0) for k in ITEMS}
    achievements = dict.fromkeys(ACHIEVEMENTS, 0)
    return {"inventory": {**inventory, **(inv or {})}, "achievements": {**achievements, **(ach or {})},
            "semantic": sem, "player_pos": POS.copy(), "player_facing": np.array(facing),
            "sleeping": sleeping, "discount": discount}


def test_crafter_reset_reports_view_and_facing():
    info = crafter_info(things=[("water", 0, 1), ("cow", 3, -2), ("zombie", 5, 0)])
    # The zombie at dx=5 is outside the 9x7 view (dx within +-4).
    assert CrafterAnnotator()(None, None, info) == ["facing water", "cow in view", "water in view"]


@pytest.mark.parametrize("before,after,expected", [
    ({}, {"inv": {"wood": 1}, "ach": {"collect_wood": 1}},
     ["achievement collect wood", "collected 1 wood"]),
    ({"inv": {"wood": 3}, "ach": {"collect_wood": 1}}, {"inv": {"wood": 4}, "ach": {"collect_wood": 2}},
     ["collected 1 wood"]),
    ({"inv": {"wood": 2}}, {"inv": {"wood": 1, "wood_pickaxe": 1}, "ach": {"make_wood_pickaxe": 1}},
     ["achievement make wood pickaxe", "made wood pickaxe", "lost 1 wood"]),
    ({"inv": {"wood": 1}, "ach": {"place_table": 1}}, {"ach": {"place_table": 2}},
     ["placed table", "lost 1 wood"]),
    ({"inv": {"sapling": 1}}, {"ach": {"place_plant": 1}},
     ["achievement place plant", "placed plant", "lost 1 sapling"]),
    ({"inv": {"food": 3}}, {"inv": {"food": 9}, "ach": {"eat_cow": 1}}, ["achievement eat cow", "ate cow"]),
    ({"inv": {"drink": 5}, "ach": {"collect_drink": 2}}, {"inv": {"drink": 6}, "ach": {"collect_drink": 3}},
     ["drank water"]),
    ({}, {"ach": {"defeat_zombie": 1}}, ["achievement defeat zombie", "defeated zombie"]),
    ({}, {"inv": {"health": 7, "food": 8, "drink": 8, "energy": 8}},
     ["health dropped", "food dropped", "drink dropped", "energy dropped"]),
    ({"inv": {"health": 5, "energy": 3}}, {"inv": {"health": 6, "energy": 4}},
     ["health rose", "energy rose"]),
    ({}, {"sleeping": True}, ["fell asleep"]),
    ({"sleeping": True}, {"ach": {"wake_up": 1}}, ["achievement wake up", "woke up"]),
    ({}, {"things": [("zombie", 2, 1)]}, ["zombie in view"]),
    ({"things": [("skeleton", -4, 3)]}, {}, ["skeleton out of view"]),
    ({"things": [("zombie", 1, 1)]}, {"things": [("zombie", 0, 1)]}, ["facing zombie"]),
    ({"things": [("tree", 1, 0)]}, {"things": [("tree", 1, 0)], "facing": (1, 0)}, ["facing tree"]),
    ({"inv": {"health": 2}}, {"inv": {"health": 0}, "discount": 0.0}, ["health dropped", "died"]),
    ({}, {}, []),
])
def test_crafter_events(before, after, expected):
    out = CrafterAnnotator()(crafter_info(**before), 0, crafter_info(**after))
    assert out == expected
    assert all(parse_event(s) for s in out)


def test_crafter_semantic_ids_match_simulator():
    import crafter

    env = crafter.Env(seed=0)
    world_ids = {k: v for k, v in env._world._mat_ids.items() if k is not None}
    obj_ids = {cls.__name__.lower(): i for cls, i in env._sem_view._obj_ids.items()}
    assert {**world_ids, **obj_ids} == {k: v for k, v in SEMANTIC_IDS.items() if k != "none"}


def grid_info(**kw):
    base = {"mission": "pick up the red ball", "carrying": "", "front": "",
            "doors": {10: "yellow locked", 20: "red closed"}, "reward": 0.0,
            "terminated": False, "truncated": False}
    return {**base, **kw}


@pytest.mark.parametrize("before,after,expected", [
    (None, {"front": "red ball"}, ["mission pick up the red ball", "facing red ball"]),
    ({"front": "red ball"}, {"carrying": "red ball"}, ["picked up red ball"]),
    ({"carrying": "blue key"}, {"front": "blue key"}, ["dropped blue key", "facing blue key"]),
    ({"front": "wall"}, {"front": "grey box"}, ["facing grey box"]),
    ({"front": "grey box"}, {"front": "wall"}, []),
    ({}, {"doors": {10: "yellow open", 20: "red closed"}}, ["unlocked yellow door"]),
    ({}, {"doors": {10: "yellow locked", 20: "red open"}}, ["opened red door"]),
    ({"doors": {20: "red open"}}, {"doors": {20: "red closed"}}, ["closed red door"]),
    ({"doors": {20: "red closed"}}, {"doors": {20: "red locked"}}, ["locked red door"]),
    ({"front": "goal"}, {"front": "goal", "reward": 0.9, "terminated": True},
     ["reached the goal", "episode ended"]),
    ({}, {"terminated": True}, ["episode ended"]),
    ({}, {"truncated": True}, ["time ran out"]),
])
def test_minigrid_events(before, after, expected):
    prev = None if before is None else grid_info(**before)
    assert MiniGridAnnotator()(prev, 0, grid_info(**after)) == expected


@pytest.mark.parametrize("info,expected", [
    ({"reward": 1.0}, ["got reward"]),
    ({"reward": -0.5, "terminated": True}, ["got penalty", "episode ended"]),
    ({"reward": 0.0, "truncated": True}, ["time ran out"]),
    ({"reward": 0.0}, []),
])
def test_generic_events(info, expected):
    assert GenericAnnotator()({}, 0, info) == expected
    assert GenericAnnotator()(None, None, info) == []


def obtain_diamond_obs(**inventory):
    """MineRL 0.4 ObtainDiamond observation: pov 64x64, 18-item inventory, mainhand."""
    items = ["coal", "cobblestone", "crafting_table", "dirt", "furnace", "iron_axe", "iron_ingot",
             "iron_ore", "iron_pickaxe", "log", "planks", "stick", "stone", "stone_axe",
             "stone_pickaxe", "torch", "wooden_axe", "wooden_pickaxe"]
    inv = {k: np.array(inventory.get(k, 0)) for k in items}
    hand = inventory.get("hand", "none")
    return {"pov": np.zeros((64, 64, 3), np.uint8), "inventory": inv,
            "equipped_items": {"mainhand": {"damage": np.array(0), "maxDamage": np.array(0),
                                            "type": hand}}}


def human_survival_obs(life=20.0, food=20, biome=4, hand="air", mined=0, crafted=0, picked=0,
                       logs=0, planks=0, alive=True, killed=0, used=0):
    """MineRL 1.0 HumanSurvival observation with equipment, life/location stats, full stats."""
    return {
        "pov": np.zeros((360, 640, 3), np.uint8),
        "inventory": {"oak_log": np.array(logs), "oak_planks": np.array(planks), "dirt": np.array(0)},
        "equipped_items": {"mainhand": {"type": hand, "damage": np.array(0), "maxDamage": np.array(0)}},
        "life_stats": {"life": np.array(life), "food": np.array(food), "saturation": np.array(5.0),
                       "air": np.array(300), "xp": np.array(0), "is_alive": np.array(alive),
                       "score": np.array(0)},
        "location_stats": {"xpos": np.array(1.0), "ypos": np.array(64.0), "zpos": np.array(2.0),
                           "pitch": np.array(0.0), "yaw": np.array(0.0), "biome_id": np.array(biome),
                           "light_level": np.array(15)},
        "mine_block": {"oak_log": np.array(mined)}, "craft_item": {"oak_planks": np.array(crafted)},
        "pickup": {"oak_log": np.array(picked)}, "use_item": {"dirt": np.array(used)},
        "kill_entity": {"zombie": np.array(killed)}, "drop": {}, "break_item": {},
    }


def test_minerl_obtain_diamond_dicts():
    ann = MineRLAnnotator()
    a = minerl_info(obtain_diamond_obs())
    b = minerl_info(obtain_diamond_obs(log=2, hand="none"))
    c = minerl_info(obtain_diamond_obs(log=1, planks=4, hand="wooden_pickaxe"))
    assert a["inventory"]["log"] == 0 and isinstance(b["inventory"]["log"], int)
    assert ann(None, None, a) == []
    assert ann(a, {}, b) == ["collected 2 log"]
    assert ann(b, {}, c) == ["lost 1 log", "collected 4 planks", "equipped wooden pickaxe"]


def test_minerl_human_survival_dicts():
    ann = MineRLAnnotator()
    s0 = minerl_info(human_survival_obs())
    assert ann(None, None, s0) == ["entered forest"]
    s1 = minerl_info(human_survival_obs(mined=1, picked=1, logs=1, life=18.0, biome=1))
    assert ann(s0, {}, s1) == ["mined oak log", "picked up oak log", "health dropped", "entered plains"]
    s2 = minerl_info(human_survival_obs(mined=1, picked=1, crafted=4, planks=4, hand="oak_planks",
                                        food=19, killed=1, life=18.0, biome=1))
    assert ann(s1, {}, s2) == ["made oak planks", "defeated zombie", "lost 1 oak log",
                               "equipped oak planks", "food dropped"]
    s3 = minerl_info(human_survival_obs(mined=1, picked=1, crafted=4, planks=4, hand="oak_planks",
                                        food=19, killed=1, life=0.0, biome=1, alive=False, used=1))
    assert ann(s2, {}, {**s3, "terminated": True}) == [
        "used dirt", "health dropped", "died", "episode ended"]


def test_minerl_flat_inventory_helper_for_importers():
    prev = info_from_inventory({"minecraft:oak_log": 1}, stats={
        "minecraft.mine_block:minecraft.oak_log": 1, "minecraft.custom:minecraft.jump": 9})
    cur = info_from_inventory({"minecraft:oak_log": 2, "minecraft:stick": 4}, mainhand="stick",
                              stats={"minecraft.mine_block:minecraft.oak_log": 2,
                                     "minecraft.craft_item:minecraft.stick": 4})
    assert prev == {"inventory": {"oak_log": 1}, "stats": {"mine_block": {"oak_log": 1}}}
    assert MineRLAnnotator()(prev, None, cur) == [
        "mined oak log", "made stick", "collected 1 oak log", "equipped stick"]
