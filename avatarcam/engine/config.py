"""Model configuration as dataclasses.

The defaults are the authors' ``vox-256`` / ``vox-adv-256`` values, which the public
checkpoint ``vox-adv-cpk.pth.tar`` was trained with. ``FOMMConfig.tiny()`` is the same
architecture with fewer channels, for fast pipeline and GUI tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeypointDetectorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25
    pad: int = 0
    single_jacobian_map: bool = False


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01


@dataclass(frozen=True)
class GeneratorConfig:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class FOMMConfig:
    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    image_size: int = 256
    kp_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    @classmethod
    def vox256(cls) -> FOMMConfig:
        """The configuration of the public ``vox-adv-cpk.pth.tar``."""
        return cls()

    @classmethod
    def mgif256(cls) -> FOMMConfig:
        """The authors' Moving-GIF ``mgif-cpk.pth.tar``: vox-256 with one jacobian map for all keypoints."""
        return cls(kp_detector=KeypointDetectorConfig(single_jacobian_map=True))

    @classmethod
    def tiny(cls) -> FOMMConfig:
        """Same classes, ~100x fewer FLOPs: for tests and soak runs, not for users."""
        return cls(
            kp_detector=KeypointDetectorConfig(block_expansion=8, max_features=64, num_blocks=3),
            generator=GeneratorConfig(
                block_expansion=8,
                max_features=32,
                num_bottleneck_blocks=1,
                dense_motion=DenseMotionConfig(block_expansion=8, max_features=64, num_blocks=3),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (ints, floats, bools): safe to store in a weights-only checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FOMMConfig:
        data = dict(data)
        kp = KeypointDetectorConfig(**data.pop("kp_detector", {}))
        gen = dict(data.pop("generator", {}))
        dense = DenseMotionConfig(**gen.pop("dense_motion", {}))
        return cls(kp_detector=kp, generator=GeneratorConfig(dense_motion=dense, **gen), **data)
