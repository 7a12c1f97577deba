"""The LeRobot v3.0 layout: codebase version, file paths, the camera key and the language-event
column that carries annotations and narrations.
"""
from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

CODEBASE_VERSION = "v3.0"
CAMERA_KEY = "observation.images.frame"
ANNOTATION_ROLE = "user"
NARRATION_ROLE = "assistant"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


# ============================================================================ language columns
def _json_type() -> pa.DataType:
    return pa.json_() if hasattr(pa, "json_") else pa.string()


def language_event_type() -> pa.ListType:
    """Arrow type of ``language_events`` (LeRobot's ``language_events_arrow_type``)."""
    return pa.list_(pa.struct([
        pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string()),
        pa.field("style", pa.string()), pa.field("camera", pa.string()),
        pa.field("tool_calls", pa.list_(_json_type())),
    ]))


def language_events(annotations: Sequence[Sequence[str]],
                    narrations: Sequence[Sequence[str]] | None = None) -> pa.Array:
    """Per-row event lists: annotations as role ``user``, narrations as role ``assistant``."""
    roles, contents, offsets = [], [], [0]
    for t, notes in enumerate(annotations):
        said = [] if narrations is None else list(narrations[t])
        roles += [ANNOTATION_ROLE] * len(notes) + [NARRATION_ROLE] * len(said)
        contents += [str(s) for s in (*notes, *said)]
        offsets.append(len(roles))
    m = len(roles)
    struct_type = language_event_type().value_type
    # Built column by column: pa.array() cannot convert Python values into the json extension type.
    fields = [pa.array(roles, pa.string()), pa.array(contents, pa.string()), pa.nulls(m, pa.string()),
              pa.nulls(m, pa.string()), pa.nulls(m, struct_type.field("tool_calls").type)]
    events = pa.StructArray.from_arrays(fields, fields=list(struct_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), events, type=language_event_type())
