"""The local stack: the template's resources in moto, its functions behind a local API Gateway.

`LocalStack` is the Python API (tests, demo); `sklambda local up|down|status` (cli.py) the command line.
"""

from sklambda_infra.local.functions import (
    CallerTimeout,
    FunctionCrashed,
    FunctionError,
    FunctionTimeout,
    InvocationError,
)
from sklambda_infra.local.stack import LocalStack, LocalStackError, details_path, read_details

__all__ = [
    "CallerTimeout",
    "FunctionCrashed",
    "FunctionError",
    "FunctionTimeout",
    "InvocationError",
    "LocalStack",
    "LocalStackError",
    "details_path",
    "read_details",
]
