"""Pure compression: content detection, the compressors, the pipeline and token counts.

Entry point for callers: ``Pipeline(PipelineConfig()).compress(text, CompressContext(...))``.
"""

from headroom.transforms.base import CompressContext, Compressor, CompressResult
from headroom.transforms.detect import Detection, detect
from headroom.transforms.pipeline import Pipeline, PipelineStats
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.tokens import count_tokens, estimate_tokens

__all__ = [
    "CompressContext",
    "CompressResult",
    "Compressor",
    "Detection",
    "Pipeline",
    "PipelineConfig",
    "PipelineStats",
    "count_tokens",
    "detect",
    "estimate_tokens",
]
