"""Flow extraction on nfstream, derived features, host context, and the flow-table schema."""

from features.config import ExtractConfig
from features.derived import derive_features
from features.featurize import FlowFeaturizer
from features.host_context import HostContext
from features.schema import (
    SCHEMA_VERSION,
    feature_columns,
    identity_columns,
    port_feature_columns,
)

__all__ = [
    "ExtractConfig",
    "FlowFeaturizer",
    "HostContext",
    "SCHEMA_VERSION",
    "derive_features",
    "feature_columns",
    "identity_columns",
    "port_feature_columns",
]
