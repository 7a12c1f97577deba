"""The units as a pseudo-language (issue 12 item 10): with ``pseudo_language`` the trainer
labels unlabelled windows with unit words and grounds on them; without it nothing changes."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import synthetic_dataset, tiny_args

from agents.obs import ObsEncoderConfig, build_obs_encoder
from agents.obs.base import with_pseudo_annotations
from agents.training import load_agent
from agents.training.command import cli

COLOURS = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=torch.uint8)


def _units(**kw):
    enc = build_obs_encoder(ObsEncoderConfig(kind="units", units_k=3, units_pixel_size=2, **kw))
    enc.fit(COLOURS[:, None, None, :].expand(3, 4, 4, 3).repeat(4, 1, 1, 1), progress=False)
    return enc.eval()


def test_unlabelled_windows_get_unit_words_where_the_unit_changes():
    enc = _units(pseudo_language=True)
    seq = torch.tensor([[0, 0, 1, 1, 2], [2, 2, 2, 0, 0]])  # colour per frame
    frames = COLOURS[seq][:, :, None, None, :].expand(2, 5, 4, 4, 3)
    valid = torch.tensor([[True] * 5, [True, True, True, True, False]])
    ids = enc.unit_ids(frames, valid=valid)
    real = [[["saw a tree"]] + [[]] * 4, [[]] * 5]
    batch = {"frames": frames, "valid": valid, "annotations": real,
             "labelled": torch.tensor([True, False])}
    out = with_pseudo_annotations(batch, enc)
    assert out["annotations"][0] == real[0] and bool(out["labelled"].all())
    u = ids[1].tolist()
    assert out["annotations"][1] == [[f"unit {u[0]}"], [], [], [f"unit {u[3]}"], []]
    assert enc.cfg.pseudo_vocabulary() == ["unit 0", "unit 1", "unit 2"]
    plain = _units()  # without the option the batch is left alone
    assert with_pseudo_annotations(batch, plain) is batch and plain.cfg.pseudo_vocabulary() == []


@pytest.mark.slow
@pytest.mark.parametrize("pseudo", [True, False])
def test_the_trainer_grounds_on_unit_words_without_any_annotation(tmp_path, pseudo):
    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=12)
    run = tmp_path / "run"
    extra = ["--model.obs.pseudo-language"] if pseudo else []
    assert cli(tiny_args(data, run, 3, "--label_fraction", "0", "--model.obs.kind", "units",
                         "--model.obs.k", "4", "--obs_fit.units_max_frames", "200",
                         "--logging.log_every", "1", *extra)) == 0
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ground = [r["loss/ground"] for r in recs if "loss/ground" in r]
    tok = load_agent(run).tokenizer
    unknown = tok.unk_token_id in tok.encode("unit 3", add_special_tokens=False)
    if pseudo:  # no episode is labelled, yet every step grounds on the unit words
        assert len(ground) == 3 and all(g > 0 for g in ground)
        assert not unknown  # the tokenizer knows the unit words
    else:
        assert ground == [] and unknown
