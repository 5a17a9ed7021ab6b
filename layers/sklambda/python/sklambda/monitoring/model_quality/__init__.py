"""Model quality: how well a published model performs in production, once labels are known and before.

metrics.py       metrics of one window of labeled predictions (binary, multiclass, regression), with intervals
degradation.py   the degradation verdict against the card's holdout metrics, and the consecutive-window state
join.py          labels joined with captured predictions by prediction id, with the join rate
estimation.py    performance estimated before labels arrive (CBPE, binary and multiclass), from the card's calibration
fairness.py      metrics per segment (group of a categorical feature), gaps, fairness differences, flags
history.py       one compact entry per checked window (the quality page's data)
page.py          one window's HTML report and the model's quality page (inline SVG, monitoring.charts)

The scheduled check that reads labels and captures from S3 and writes the reports is
sklambda.monitoring.quality_check.

Once labels are known:

    joined = join_labels(labels, predictions)                       # id -> label with id -> prediction
    estimates = window_metrics(card.task, y_true, prob=prob, predicted=pred, decision=card.decision,
                               classes=card.classes)
    report = check_degradation(estimates, card.metrics, labeled_rows=len(y_true), decision=card.decision)
    state, model_degraded = update_state(previous_state, report)

Domain only: no S3, no Lambda event shapes. Not the publish-time data-quality gate (sklambda.publishing.quality).
"""
