"""Powertools Logger (JSON), Tracer and Metrics (EMF), shared by every handler of one container.

Creating them is cheap and makes no AWS client: the service name and the metrics namespace come from
POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE, which the settings also require.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by(name: str, dimension: str, value: str) -> None:
    """A count with its own dimension (e.g. NotReady by rule), flushed at once as its own EMF blob."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name=dimension, value=value)
