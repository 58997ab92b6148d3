"""Flow extraction on nfstream, derived features, host context, and the flow-table schema."""

from p2pdetect.features.config import ExtractConfig
from p2pdetect.features.derived import derive_features
from p2pdetect.features.featurize import FlowFeaturizer
from p2pdetect.features.host_context import HostContext
from p2pdetect.features.schema import (
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
