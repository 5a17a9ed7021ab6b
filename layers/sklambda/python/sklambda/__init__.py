"""sklambda: scikit-learn models in production on AWS Lambda.

`sklambda.publish(model, X, y, name=...)` is imported lazily so the Lambda cold start does not pay for
the metrics and baseline code it never uses. No submodule is named `publish`, so importing any module of the
package never replaces the function with a module (as `sklambda/publish.py` once did on the second access).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "publish"]


def __getattr__(name: str) -> Any:
    if name == "publish":
        from sklambda.publishing.publisher import publish

        return publish
    raise AttributeError(f"module 'sklambda' has no attribute {name!r}")
