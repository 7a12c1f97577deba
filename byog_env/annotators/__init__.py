"""Annotators, one per env family: plain classes ``__call__(prev_info, action, info) -> list[str]``."""
from byog_env.annotators.base import Annotator, GenericAnnotator
from byog_env.annotators.crafter import CrafterAnnotator
from byog_env.annotators.minerl import MineRLAnnotator, info_from_inventory, minerl_info
from byog_env.annotators.minigrid import MiniGridAnnotator

__all__ = [
    "Annotator", "CrafterAnnotator", "GenericAnnotator", "MineRLAnnotator", "MiniGridAnnotator",
    "info_from_inventory", "minerl_info",
]
