"""What the app tells its operator: its business metrics, counted with Powertools Metrics.

Metrics are Powertools Metrics: each is printed as one log line in CloudWatch's Embedded Metric Format,
which CloudWatch Logs turns into a metric of the namespace ``Thumbnailr``, with the dimension ``service``
(``POWERTOOLS_SERVICE_NAME``); no PutMetricData call, so no latency and no IAM permission
(https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/). A metric with a dimension of its own
(a format, a reason) is a single metric: its own line, so it never mixes with the others' dimensions.

Cold-start cost, measured with the notebooks' import-cost helper (``workshop.importcost``), median of 9 fresh
imports of ``thumbnailr.handlers.request_thumbnail`` on a 2-core x86_64 machine: this module adds 0.8 ms
with bytecode (.pyc) in site-packages, 1.0 ms without any; Powertools' Metrics itself adds nothing, because
``from aws_lambda_powertools import Logger`` already imports it (alone it is 3.9 ms, 13.7 ms without .pyc).
The handler's whole import is 336 ms, 1,678 ms without .pyc (boto3 and Pillow, mostly)::

    python -c 'from workshop import importcost as c; m = c.measure("thumbnailr.handlers.request_thumbnail",
               pythonpath="sam-app/src"); print(c.total_ms(m, "thumbnailr.handlers.telemetry"))'
"""

from __future__ import annotations

import warnings

# ~0 ms on a cold start: the Logger's `import aws_lambda_powertools` has already imported Metrics (see above)
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "Thumbnailr"
metrics = Metrics(namespace=NAMESPACE)  # one metric set per process: Powertools' Metrics instances share it
# an invocation that counted nothing in the set (only single metrics, or nothing happened) is normal here
warnings.filterwarnings("ignore", message="No application metrics to publish")

#: A photo's rejection reason -> the dimension value it is counted under (few values: a dimension's
#: values make separate metrics). The reasons are those of imaging.ImageRejected and processing.
_REJECTION_KINDS = (
    ("not an image", "NotAnImage"),
    ("image is truncated", "Corrupt"),
    ("format ", "FormatNotAllowed"),
    ("image has no pixels", "Empty"),
    ("image is ", "TooManyPixels"),  # "image is N megapixels, over …", "image is too large to open safely"
    ("JPEG has", "TooSlowToDecode"),
    ("image takes over", "TooSlowToDecode"),
    ("file is", "FileTooLarge"),
    ("no photo was uploaded", "NotUploaded"),
    ("the photo could not be checked", "NotCheckedInTime"),
)


def rejection_kind(reason: str) -> str:
    return next((kind for prefix, kind in _REJECTION_KINDS if reason.startswith(prefix)), "Other")


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add one count to ``name``, in the handler's metric set or, with dimensions, as a metric of its own."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)

