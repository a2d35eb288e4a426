"""Test-only stand-in for ``torchvision`` (see ``standins/README.md``)."""

__version__ = "0.15.0"


def _is_tracing() -> bool:
    return False
