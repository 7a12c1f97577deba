"""Issue #15 item 4: checkpoints in transformers conventions, read back by the real clients
(transformers' Auto classes, peft), old layouts still load, and the text API ``describe``."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.config import make_model_config
from agents.errors import ModelError
from agents.model import hf
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer, unslot

SENTENCES = ["saw a cow", "collected 1 wood", "zombie in view", "placed table"]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SENTENCES)


def _agent(tok, preset="byog", **over) -> BYOGAgent:
    torch.manual_seed(0)
    over.setdefault("text", {"tokens_per_frame": 4})
    agent = BYOGAgent(make_model_config("tiny", preset, **over), tok)
    with torch.no_grad():  # trained special rows, so folding them in is not vacuous
        for m in agent.modules():
            if hasattr(m, "delta_in") and isinstance(m.delta_in, torch.nn.Parameter):
                m.delta_in.normal_(0, 0.5)
                m.delta_out.normal_(0, 0.5)
    return agent.eval()


def _our_logits(tlm, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return tlm.logits(tlm.hidden(tlm.embed(ids)))


def _ids(tok, n=12) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, len(tok), (2, n), generator=g)


def test_lms_load_with_auto_classes_and_give_our_logits(tok, tmp_path):
    import os

    agent = _agent(tok)
    old = os.umask(0o022)
    try:
        out = agent.save_pretrained(tmp_path / "agent")
    finally:
        os.umask(old)
    ids = _ids(tok)
    for name, tlm in (("narrator", agent.encoder.tlm), ("predictor", agent.predictor.tlm)):
        lm = AutoModelForCausalLM.from_pretrained(out / name).eval()
        assert type(lm).__name__ == "GPTNeoXForCausalLM"
        with torch.no_grad():
            theirs = lm(input_ids=ids).logits
        torch.testing.assert_close(theirs, _our_logits(tlm, ids), rtol=1e-5, atol=1e-5)
        # the special rows carry our deltas (the base rows alone would differ)
        assert not torch.allclose(theirs, _our_logits_without_deltas(tlm, ids), atol=1e-3)
        at = AutoTokenizer.from_pretrained(out / name)
        assert at.convert_tokens_to_ids(tok.convert_ids_to_tokens([5, 6])) == [5, 6]
        assert len(at) == len(tok)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "byog" and cfg["exports"] == {"narrator": "narrator",
                                                              "predictor": "predictor"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl")]  # safetensors only
    # issue 14 item 3: every file with the umask's mode (the test runs under umask 022)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o644)}, \
        [(p.name, oct(p.stat().st_mode & 0o777)) for p in files if p.stat().st_mode & 0o777 != 0o644]
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "## Data" in card and "## Config" in card \
        and "## Metrics" in card and "AutoModelForCausalLM" in card
    from huggingface_hub import ModelCard  # the Hub's own reader of the card's metadata

    meta = ModelCard.load(out / "README.md").data
    assert meta.library_name == "transformers" and "byog" in meta.tags


def _our_logits_without_deltas(tlm, ids):
    with torch.no_grad():
        h = tlm.hidden(tlm.core.gpt_neox.embed_in(ids))
        return tlm.core.lm_head(h)


def test_whole_agent_round_trip_and_describe(tok, tmp_path):
    agent = _agent(tok)
    agent.save_pretrained(tmp_path / "a")
    back = BYOGAgent.from_pretrained(tmp_path / "a").eval()
    frames = torch.randint(0, 255, (5, 16, 16, 3), dtype=torch.uint8)
    ids = agent.narrate(frames[None])
    assert torch.equal(ids, back.narrate(frames[None]))
    text = back.describe(frames)
    assert len(text) == 5 and all(isinstance(s, list) for s in text)
    assert all(isinstance(x, str) for s in text for x in s)
    assert text == unslot(ids, tok)[0]
    batch = back.describe(torch.stack([frames, frames.flip(0)]))
    assert len(batch) == 2 and batch[0] == text
    with pytest.raises(ModelError, match="uint8 frames"):
        back.describe(frames.float())
    # a clip longer than the context window: bounded live narration, one entry per frame
    long = torch.randint(0, 255, (3 * 16 + 5, 16, 16, 3), dtype=torch.uint8)
    said = back.describe(long, window=16)
    assert len(said) == long.shape[0]
    assert said[:16] == unslot(back.narrate(long[None, :16]), tok)[0]


def test_old_layout_still_loads(tok, tmp_path):
    agent = _agent(tok)
    d = agent.save_pretrained(tmp_path / "old")
    cfg = json.loads((d / "config.json").read_text())
    (d / "model_config.json").write_text(json.dumps(cfg["byog"]))  # the pre-#15 layout
    for extra in ("config.json", "README.md"):
        (d / extra).unlink()
    for extra in ("narrator", "predictor"):
        shutil.rmtree(d / extra)
    frames = torch.randint(0, 255, (1, 3, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(BYOGAgent.from_pretrained(d).narrate(frames), agent.narrate(frames))
    with pytest.raises(ModelError, match="not a BYOG checkpoint"):
        BYOGAgent.from_pretrained(tmp_path)


def test_cross_attention_narrator_is_refused_with_one_line(tok, tmp_path):
    agent = _agent(tok, "byog-xattn")
    with pytest.raises(ModelError, match="cross-attention") as err:
        hf.export_lm(agent, tmp_path / "lm")
    assert "\n" not in str(err.value)
    out = agent.save_pretrained(tmp_path / "x")  # the whole agent still saves and loads
    assert not (out / "narrator").exists() and (out / "predictor" / "config.json").is_file()
    assert "cross-attention" in json.loads((out / "config.json").read_text())["exports"]["narrator"]
    BYOGAgent.from_pretrained(out)


def test_lora_adapters_are_peft_adapters_and_merged_lms_match(tok, tmp_path):
    from peft import PeftModel
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from agents.model.lora import adapter_parameters

    torch.manual_seed(0)
    base = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=64))
    base.save_pretrained(tmp_path / "base")
    agent = _agent(tok, "byog-lora", lm={"pretrained_path": str(tmp_path / "base")})
    with torch.no_grad():  # leave LoRA's B = 0 init, so the adapter changes the logits
        for a in ("encoder", "predictor"):
            for p in adapter_parameters(agent.shared_lm, a).values():
                p.normal_(0, 0.05)
    out = agent.save_pretrained(tmp_path / "agent")
    ids = _ids(tok)
    for name, tlm in (("narrator", agent.encoder.tlm), ("predictor", agent.predictor.tlm)):
        ours = _our_logits(tlm, ids)
        merged = AutoModelForCausalLM.from_pretrained(out / name).eval()
        with torch.no_grad():
            torch.testing.assert_close(merged(input_ids=ids).logits, ours, rtol=1e-4, atol=1e-4)
        adapter = out / f"{name}_lora"
        assert (adapter / "adapter_config.json").is_file()
        assert (adapter / "adapter_model.safetensors").is_file()
        peft = PeftModel.from_pretrained(
            GPTNeoXForCausalLM.from_pretrained(tmp_path / "base"), adapter).eval()
        with torch.no_grad():  # base + adapter, without our special-row deltas
            got = peft(input_ids=ids).logits
        torch.testing.assert_close(got, _our_logits_without_deltas(tlm, ids), rtol=1e-4, atol=1e-4)
    # the agent itself round-trips
    back = BYOGAgent.from_pretrained(out)
    frames = torch.randint(0, 255, (1, 3, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(back.narrate(frames), agent.narrate(frames))
