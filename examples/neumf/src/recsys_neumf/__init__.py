"""A recommender kept outside recsys: NeuMF (He et al., WWW 2017), registered as ``neumf``."""

from recsys_neumf.model import NeuMF, NeuMFConfig

__all__ = ["NeuMF", "NeuMFConfig"]
