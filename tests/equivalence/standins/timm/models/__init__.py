"""Stand-in ``timm.models``."""
