"""Method plugins: the protocol (stages, typed config, run context), registry and runner."""

from vpsbench.methods.base import (
    PREDICT_STAGE,
    Method,
    MethodConfig,
    RunContext,
    build_config,
    config_fields,
    weight_settings,
)
from vpsbench.methods.registry import ENTRY_POINT_GROUP, method_class, method_names

__all__ = [
    "ENTRY_POINT_GROUP",
    "PREDICT_STAGE",
    "Method",
    "MethodConfig",
    "RunContext",
    "build_config",
    "config_fields",
    "method_class",
    "method_names",
    "weight_settings",
]
