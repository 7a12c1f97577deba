"""The training pipeline behind ``python -m agents.training``.

Small modules, one job each: ``config`` (the ``TrainConfig`` tree, YAML + CLI layering),
``data`` (episode split, labelled episodes, tokenizer, resumable loaders), ``checkpoint``
(atomic checkpoints, dataset-compatibility checks, ``load_agent``), ``distributed``
(torch.distributed data parallelism), ``evaluate`` (pooled validation, example narrations),
``logs`` (metrics.jsonl, TensorBoard, PNG plots) and ``loop`` (``train(cfg)``).
"""
from agents.training.config import TrainConfig, TrainError, parse_args
from agents.training.loading import load_agent
from agents.training.loop import train

__all__ = ["TrainConfig", "TrainError", "load_agent", "parse_args", "train"]
