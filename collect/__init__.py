"""Dataset collection and reading.

- ``collect.rollout``: ``python collect/rollout.py --env crafter --policy random --episodes 20
  --out data/crafter`` (or ``byog-collect``): the CLI; settings in ``collect.config``, envs and
  the ``Collector`` in ``collect.engine``, where episodes run (in-process, worker processes,
  Ray) in ``collect.backends``, statistics in ``collect.stats``.
- ``collect.format``: the on-disk format (Parquet, one file per episode), action codec, records.
- ``collect.writer``: ``DatasetWriter`` and atomic writes.
- ``collect.errors``: every error class (one ``CollectError`` base) and the CLI exit codes.
- ``collect.dataset``: ``open_dataset``, ``Episode``, ``WindowDataset``, ``collate_windows``,
  ``split_episodes``.
- ``collect.inspect_dataset``: ``byog-inspect DIR`` (stats, contact sheet, frequency plot).
- ``collect.video``: ``write_video`` mp4 previews with subtitles.
- ``collect.policies``, ``collect.importers``, ``collect.export``: policies and converters.

Submodules are imported on use so that ``import collect`` stays cheap.
"""
