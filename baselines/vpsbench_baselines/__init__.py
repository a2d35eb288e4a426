"""The four unsupervised VPS baselines of the VideoCUPS paper (Sec. 4), as vpsbench plugins.

* ``depthg-videocutler`` — DepthG semantics + class-agnostic VideoCutLER video instances, fused
  with the VideoCUPS thing/stuff split and semantic–instance alignment;
* ``u2seg-sort``, ``cups-sort``, ``cups-mono-sort`` — per-frame unsupervised panoptic predictions
  (U2Seg, CUPS, CUPS trained on monocular video) tracked with SORT.

Each runs in one of three modes, chosen by its settings: with the published weights
(``--set weights=PATH``), from per-frame predictions produced elsewhere (``--set per_frame=DIR``,
a folder in a vpsbench prediction format), or — when neither is given — with a weight-free
stand-in (:mod:`vpsbench_baselines.weight_free`) so that the tracking and fusion parts run and are
scored
on any dataset, the synthetic one included. The mode is logged and recorded in ``run.json``.
"""
