"""Publishing: turning a fitted estimator into a signed registry version. Never imported on the request path.

publisher  build_card, publish        the card and the artifact, the quality and version checks
artifact   what a pickle needs, read without running it
parity     the gate: the artifact served in the deployed runtime answers like the estimator in memory
"""

from sklambda.publishing.publisher import build_card, publish

__all__ = ["build_card", "publish"]
