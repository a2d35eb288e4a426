"""Test-only stand-in for ``timm`` (see ``standins/README.md``)."""
