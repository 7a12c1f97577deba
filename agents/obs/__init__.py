"""Observation encoders behind one interface (see :class:`agents.obs.base.ObsEncoder`)."""
from agents.obs.base import ObsEncoder
from agents.obs.cnn import CNNEncoder

__all__ = ["ObsEncoder", "CNNEncoder"]
