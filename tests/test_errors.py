"""The agents package's error module and its torch-free leaf modules."""
import subprocess
import sys

import pytest

from agents import errors


def test_every_agents_error_shares_one_base_that_is_a_value_error():
    from agents.model.lm import ModelError
    from agents.model.text import TextError
    from agents.narrate.narration import NarrationError
    from agents.obs.base import ObsEncoderError
    from agents.training.config import TrainError

    # the old import paths are the same classes
    assert (ModelError, NarrationError, ObsEncoderError, TextError, TrainError) == (
        errors.ModelError, errors.NarrationError, errors.ObsEncoderError, errors.TextError,
        errors.TrainError)
    for cls in (ModelError, NarrationError, ObsEncoderError, TextError, TrainError):
        assert issubclass(cls, errors.AgentsError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("module", ["agents", "agents.config", "agents.errors", "byog_core.registry"])
def test_leaf_modules_load_neither_torch_nor_transformers(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_configs_build_and_validate_without_torch():
    code = ("import sys; from agents.config import make_model_config, ModelConfig; "
            "c = make_model_config('tiny', 'byog-parallel'); "
            "assert ModelConfig.from_dict(c.to_dict()) == c; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
