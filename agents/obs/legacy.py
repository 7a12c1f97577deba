"""Old flat ``ObsEncoderConfig`` flags onto the per-plugin configs (torch-free).

Until the registry, one flat config held every kind's options behind a prefix (``cnn_arch``,
``vqvae_hidden``, ``units_k``, ``precomputed_dim``) and a tri-state ``cnn_frame_delta``; command
lines still use those names (saved dicts and attributes: ``agents.obs.config``), so:

* ``--model.obs.<kind>_<field>`` of the chosen kind becomes ``--model.obs.<field>``
  (``--model.obs.no-units-deltas`` -> ``--model.obs.no-deltas``); the old tri-state
  ``--model.obs.cnn_frame_delta True|False|None`` becomes ``--model.obs.[no-]frame-delta``
  (None, the old "on for the cnn", is today's default);
* another built-in kind's old flag is dropped with a warning (it did nothing before either);
* ``--model.obs.kind`` / ``--model.obs.plugin`` are read before the other flags, because the
  kind decides which options they may name.
"""
from __future__ import annotations

import warnings
from typing import Any

from agents.obs.config import ObsEncoderError
from agents.obs.config import flat_owner as _owner

_PREFIX = "--model.obs."


def obs_flags(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """Take ``--model.obs.kind K`` and ``--model.obs.plugin M`` out of ``argv``.

    Returns:
        ``(kind or None, plugin or None, the other arguments)``.
    """
    found: dict[str, str | None] = {"kind": None, "plugin": None}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        name, value, used = _split(argv, i)
        if name in found:
            if value is None:
                raise ObsEncoderError(f"{_PREFIX}{name} needs a value, e.g. {_PREFIX}{name} units.")
            found[name] = value
        else:
            rest.extend(argv[i:i + used])
        i += used
    return found["kind"], found["plugin"], rest


def obs_cli_layer(base: dict[str, Any], argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Fold ``--model.obs.kind`` / ``--model.obs.plugin`` into the YAML-level dict ``base``
    (the kind decides which options the other flags may name); the other arguments back."""
    kind, plugin, rest = obs_flags(argv)
    if kind is None and plugin is None:
        return base, rest
    model = dict(base.get("model") or {})
    obs = dict(model.get("obs") or {})
    if kind is not None and kind != obs.get("kind", "cnn") and "plugin" in obs:
        obs = {"out_dim": obs["out_dim"]} if "out_dim" in obs else {}  # another kind's options
    obs.update({k: v for k, v in (("kind", kind), ("plugin", plugin)) if v is not None})
    return {**base, "model": {**model, "obs": obs}}, rest


def translate_flat_flags(argv: list[str], kind: str) -> list[str]:
    """Rewrite old flat ``--model.obs.<kind>_<field>`` flags of ``kind`` to the new names.

    An old flag of another kind (inert before too) is dropped with a warning.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        name, value, used = _split(argv, i)
        neg = name is not None and name.startswith("no_") and _owner(name[3:]) is not None
        owner = None if name is None else _owner(name[3:] if neg else name)
        if owner is None:
            out.append(argv[i])
            i += 1
            continue
        if owner[0] != kind:  # inert in the old flat config too: dropped, said once
            warnings.warn(f"{argv[i].split('=')[0]} is an option of the {owner[0]!r} observation "
                          f"encoder and is ignored with {_PREFIX}kind {kind}.", stacklevel=2)
        else:
            out.extend(_new_flag(owner[1], neg, value, argv[i:i + used]))
        i += used
    return out


def _new_flag(field: str, neg: bool, value: str | None, old: list[str]) -> list[str]:
    flag = _PREFIX + field
    if field == "frame_delta":  # old tri-state flag took a value: True / False / None
        if value is None and not neg:
            return [flag]
        return [] if value == "None" else [
            _PREFIX + "no-frame-delta" if neg or value == "False" else flag]
    if neg:
        return [_PREFIX + "no-" + field.replace("_", "-")]
    rest = old[1:] if "=" not in old[0] else []
    return [flag if "=" not in old[0] else f"{flag}={value}", *rest]


def _split(argv: list[str], i: int) -> tuple[str | None, str | None, int]:
    """``argv[i]`` as (option name after ``--model.obs.`` with ``_``, its value, tokens used);
    a value is the ``=`` part or every following token up to the next ``--`` flag."""
    arg = argv[i]
    if not arg.startswith(_PREFIX):
        return None, None, 1
    name, eq, value = arg[len(_PREFIX):].partition("=")
    name = name.replace("-", "_")
    if eq:
        return name, value, 1
    j = i + 1
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    return name, (argv[i + 1] if j > i + 1 else None), j - i
