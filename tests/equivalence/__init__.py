"""Equivalence with the published implementations in ``../shared/reference-code`` (test oracles)."""
