"""``trunc_normal_`` and ``DropPath`` with timm's semantics (identity at inference)."""

from torch import Tensor, nn

trunc_normal_ = nn.init.trunc_normal_


def drop_path(x: Tensor, drop_prob: float = 0.0, training: bool = False) -> Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)


def to_2tuple(value: object) -> tuple[object, object]:
    return value if isinstance(value, tuple) else (value, value)  # type: ignore[return-value]
