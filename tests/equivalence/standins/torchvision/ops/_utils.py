"""``split_normalization_params`` as torchvision documents it (CUPS' optimiser groups use it)."""

from torch import nn

NORM_CLASSES = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


def split_normalization_params(
    model: nn.Module, norm_classes: tuple[type, ...] | None = None
) -> list[list[nn.Parameter]]:
    """[parameters of normalisation layers, all other parameters], each as found in modules()."""
    classes = norm_classes or NORM_CLASSES
    norm_params: list[nn.Parameter] = []
    other_params: list[nn.Parameter] = []
    for module in model.modules():
        if next(module.children(), None) is not None:
            other_params.extend(p for p in module.parameters(recurse=False) if p.requires_grad)
        elif isinstance(module, classes):
            norm_params.extend(p for p in module.parameters() if p.requires_grad)
        else:
            other_params.extend(p for p in module.parameters() if p.requires_grad)
    return [norm_params, other_params]
