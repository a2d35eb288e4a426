"""Unsupervised cue providers (flow, depth & motion, features), selectable by name."""

from vpsbench.cues.base import (
    CUE_KINDS,
    CueProvider,
    DepthMotion,
    DepthProvider,
    FeatureMap,
    FeatureProvider,
    FlowProvider,
    MissingWeightsError,
    VideoClip,
    add_builtin_modules,
    cue_class,
    cue_names,
    make_cue,
    register_cue,
)

add_builtin_modules(
    "vpsbench.cues.oracle",
    "vpsbench.cues.classical_flow",
    "vpsbench.cues.handcrafted",
    "vpsbench.cues.raft",
    "vpsbench.cues.dynamo_depth",
    "vpsbench.cues.dino",
)

__all__ = [
    "CUE_KINDS",
    "CueProvider",
    "DepthMotion",
    "DepthProvider",
    "FeatureMap",
    "FeatureProvider",
    "FlowProvider",
    "MissingWeightsError",
    "VideoClip",
    "cue_class",
    "cue_names",
    "make_cue",
    "register_cue",
]
