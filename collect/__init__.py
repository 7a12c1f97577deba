"""Dataset collection and reading.

- ``collect.rollout``: ``python collect/rollout.py --env crafter --policy random --episodes 20
  --out data/crafter`` (vector envs, ``--resume``, ``--video``, Ray via ``collect.distributed``).
- ``collect.writer``: the on-disk format (Parquet, one file per episode) and ``DatasetWriter``.
- ``collect.dataset``: ``open_dataset``, ``Episode``, ``WindowDataset``, ``collate_windows``,
  ``split_episodes``.
- ``collect.inspect``: ``python -m collect.inspect DIR`` (stats, contact sheet, frequency plot).
- ``collect.video``: ``write_video`` mp4 previews with subtitles.
- ``collect.policies``, ``collect.importers``, ``collect.export``: policies and converters.

Submodules are imported on use so that ``import collect`` stays cheap.
"""
