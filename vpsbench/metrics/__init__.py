"""Metrics: STQ (Weber et al. 2021), PQ (Kirillov et al. 2019), VPQ (Kim et al. 2020)."""
