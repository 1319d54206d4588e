"""Going serverless on AWS with Python & SAM: what the notebooks import (the lab, pictures, pricing, IAM tables).

The local cloud they run on is the ``localcloud`` package beside this one; ``python -m workshop up``
(``workshop.cli``) starts it from a terminal.
"""
