"""Label aggregation: pure numpy/scipy estimators, no I/O.

Every estimator has ``fit(tasks, workers, labels, *, n_tasks=None, n_workers=None,
n_classes=None, gold=None, init=None) -> self`` on integer index arrays (see :func:`encode`),
plus ``fit_predict`` and ``fit_predict_proba``. ``METHODS`` maps the CLI/API method names to
the classes; add a method by importing its class here and adding one entry.

The other answer types have one estimator each, with the same conventions and their own
answer arrays: :class:`MultilabelDawidSkene` (label sets), :class:`NumericEM` (numbers) and
:class:`CrowdBradleyTerry` (pairwise preferences).
"""

from __future__ import annotations

from crowd.em._base import Aggregator, ConvergenceWarning
from crowd.em._em import DSParams
from crowd.em.auto import LABEL_FREE, LABEL_FREE_DEFAULT, AutoAggregator
from crowd.em.dawid_skene import DawidSkene
from crowd.em.encode import Encoded, class_order, encode
from crowd.em.hierarchical_ds import HierarchicalDawidSkene
from crowd.em.majority_vote import MajorityVote
from crowd.em.multilabel import MultilabelDawidSkene, MultilabelParams
from crowd.em.numeric import NumericEM
from crowd.em.one_coin import OneCoinDawidSkene
from crowd.em.pairwise import CrowdBradleyTerry, PairwiseParams

METHODS: dict[str, type[Aggregator]] = {**LABEL_FREE, "auto": AutoAggregator}

DEFAULT_METHOD = "auto"

__all__ = [
    "DEFAULT_METHOD",
    "LABEL_FREE",
    "LABEL_FREE_DEFAULT",
    "METHODS",
    "Aggregator",
    "AutoAggregator",
    "ConvergenceWarning",
    "CrowdBradleyTerry",
    "DSParams",
    "DawidSkene",
    "Encoded",
    "HierarchicalDawidSkene",
    "MajorityVote",
    "MultilabelDawidSkene",
    "MultilabelParams",
    "NumericEM",
    "OneCoinDawidSkene",
    "PairwiseParams",
    "class_order",
    "encode",
]
