"""Automatic scores for ERP panorama videos, one module per metric (definitions: DESIGN.md).

Metric names are stable keys used in every output (JSON, MLflow, tables); see
`dvd360.metrics.registry.METRIC_NAMES`. A changed definition gets a new name.
"""
