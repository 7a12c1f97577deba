"""LeRobot datasets in and out: ``python -m collect.export lerobot DIR --out DEST [--language]`` and
``python -m collect.importers lerobot SRC --out DIR``.

Written with pyarrow and PyAV against LeRobot's documented layout (``codebase_version`` v3.0),
because the ``lerobot`` package pins torch/transformers versions that clash with ours::

    meta/info.json                                   codebase_version, fps, features, path templates
    meta/stats.json                                  per feature min/max/mean/std/count/q01…q99
    meta/tasks.parquet                               task (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, data and
                                                     video file indices, from/to timestamps
    data/chunk-000/file-000.parquet                  one row per frame (many episodes per file)
    videos/<camera key>/chunk-000/file-000.mp4       many episodes per file, located by timestamps

Our rows map to LeRobot rows one to one: frame ``t`` -> the camera key, ``action`` (the last row,
where we store "no action", repeats the previous action, as LeRobot needs one per row),
``next.reward`` / ``next.done`` (the reward and termination of the step *from* row ``t``),
``timestamp = t / fps``, ``frame_index``, ``episode_index``, ``index``, ``task_index`` (tasks
are BabyAI missions, else the env name). With ``--language`` the per-row sentences become
``language_events`` (a list of ``{role, content, style, camera, tool_calls}`` structs on the row
where they fire, feature dtype ``"language"``, ``style`` and ``camera`` None): annotations with
role ``"user"`` (language that reaches the agent from outside: the environment's ground truth),
narrations (a ``narration`` column, when the dataset has one) with role ``"assistant"`` (what the
agent itself says). The importer reads v3.0 and v2.1 (one file per episode) back.
"""
from __future__ import annotations

from collect.lerobot.exporter import (  # noqa: F401
    ExportSummary,
    LeRobotExport,
    _actions,
    _episode_tables,
    _features,
    _mb,
    _Stats,
    _summary,
    _tree_bytes,
    _write_parquet,
    _write_tasks,
    export_lerobot,
)
from collect.lerobot.importer import (  # noqa: F401
    _CAMERA_RE,
    _SPEC_RE,
    MAX_TEMPLATE,
    TEMPLATE_FIELDS,
    LeRobotImport,
    _action_info,
    _annotations,
    _check_info,
    _chunks_size,
    _decode_image,
    _episode_columns,
    _episode_frames,
    _episode_rows,
    _import_episode,
    _inside,
    _int,
    _json,
    _jsonl,
    _read_parquet,
    _read_tasks_v3,
    _time,
    choose_camera,
    import_lerobot,
    read_lerobot_meta,
)
from collect.lerobot.layout import (  # noqa: F401
    ANNOTATION_ROLE,
    CAMERA_KEY,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    NARRATION_ROLE,
    QUANTILES,
    VIDEO_PATH,
    _json_type,
    language_event_type,
    language_events,
)
from collect.lerobot.video import (  # noqa: F401
    DEFAULT_VCODEC,
    MAX_RATIO,
    MAX_SIDE,
    NO_ERRORS,
    VIDEO_CODECS,
    VideoCodec,
    VideoSettings,
    _decoded_budget,
    decode_video,
    encode_video,
    fidelity,
    iter_video_frames,
    lossless_vcodecs,
    merge_errors,
    pixel_errors,
    video_errors,
    video_settings,
)

__all__ = [
    "ANNOTATION_ROLE",
    "CAMERA_KEY",
    "CHUNKS_SIZE",
    "CODEBASE_VERSION",
    "DATA_PATH",
    "DEFAULT_VCODEC",
    "EPISODES_PATH",
    "ExportSummary",
    "LeRobotExport",
    "LeRobotImport",
    "MAX_RATIO",
    "MAX_SIDE",
    "MAX_TEMPLATE",
    "NARRATION_ROLE",
    "NO_ERRORS",
    "QUANTILES",
    "TEMPLATE_FIELDS",
    "VIDEO_CODECS",
    "VIDEO_PATH",
    "VideoCodec",
    "VideoSettings",
    "choose_camera",
    "decode_video",
    "encode_video",
    "export_lerobot",
    "fidelity",
    "import_lerobot",
    "iter_video_frames",
    "language_event_type",
    "language_events",
    "lossless_vcodecs",
    "merge_errors",
    "pixel_errors",
    "read_lerobot_meta",
    "video_errors",
    "video_settings",
]
