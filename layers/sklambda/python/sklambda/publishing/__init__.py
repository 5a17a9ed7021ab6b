"""Publishing: turning a fitted estimator into a signed registry version. Never imported on the request path.

publisher  build_card, publish        the card and the artifact, the quality and version checks
artifact   what a pickle needs, read without running it
parity     the gate: the artifact served in the deployed runtime answers like the estimator in memory
parity_child  the gate's process in the target runtime (no publisher site-packages), scoring through each route
quality    refusals before anything is written: training data checks and metric gates
baseline   the training distributions the drift check compares windows with
unread     columns the model never reads (optional at inference): from the pipeline's structure, confirmed
"""

from sklambda.publishing.publisher import build_card, publish

__all__ = ["build_card", "publish"]
