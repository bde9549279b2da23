"""Networks: the weight-sharing supernet, stand-alone models, weight slicing and import, params/MACs counting.

    supernet = Supernet(space, num_classes=1, output_levels=(0, 1, 2, 3, 4), head_activation="auto")
    maps = supernet(images, arch)            # train: {level: (N, K, H, W)}; eval: level-0 map (N, K, H, W)
    model = extract_subnet(supernet, arch)    # folded StandaloneModel, eval mode, ONNX-exportable
    params, macs = profile(arch, (224, 224), space=space)

Stand-alone blocks for latency tables (constructor arguments documented in `inas.nn.blocks`): Stem, MBConvLayer,
TransportUpsample, TransportDownsample, TransportFusion, DecoderUpsample, DecoderFusion, Head, SMSU.
"""

from inas.nn.blocks import (
    SMSU,
    DecoderFusion,
    DecoderUpsample,
    Head,
    MBConvLayer,
    Stem,
    TransportDownsample,
    TransportFusion,
    TransportUpsample,
    reparameterize_all,
)
from inas.nn.checkpoint import (
    LoadReport,
    load_original_checkpoint,
    load_standalone,
    load_supernet,
    load_supernet_weights,
    save_standalone,
    save_supernet,
    space_from_spec,
    space_spec,
)
from inas.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d, DynamicMBConvLayer, DynamicSMSU
from inas.nn.ops import batchnorm_modules
from inas.nn.profile import arch_cost, count_module, mbconv_cost, profile
from inas.nn.standalone import StandaloneModel, extract_subnet, slice_like
from inas.nn.supernet import Supernet

__all__ = [
    "SMSU", "DecoderFusion", "DecoderUpsample", "DynamicBatchNorm2d", "DynamicConv2d", "DynamicMBConvLayer",
    "DynamicSMSU", "Head", "LoadReport", "MBConvLayer", "StandaloneModel", "Stem", "Supernet", "TransportDownsample",
    "TransportFusion", "TransportUpsample", "arch_cost", "batchnorm_modules", "count_module", "extract_subnet",
    "load_original_checkpoint", "load_standalone", "load_supernet", "load_supernet_weights", "mbconv_cost",
    "profile", "reparameterize_all", "save_standalone", "save_supernet", "slice_like", "space_from_spec",
    "space_spec",
]
