"""Watching production: privacy-safe capture of scored rows, windows of captured rows, drift against the baseline,
model quality once labels arrive (and estimated before).

capture.py       capture records (pseudonymized, pii dropped) written to the logs for Firehose
privacy.py       erasure of one data subject's captured rows
windows.py       reading a window of capture lines from S3 (one version, or the predictions labels join), quarantining
                 malformed ones
charts.py        the SVG charts over windows and the links between a model's monitoring pages
drift/           the drift statistics and verdict, the reports, the history and monitoring page (domain only: no S3)
drift_check.py   the scheduled check: window + card baseline -> reports, state, verdict, history, monitoring page
ground_truth/    labels stored by arrival day, read back per window
model_quality/   metrics with intervals, the degradation rule, the label join, CBPE, segments, the quality page
quality_check.py the scheduled check: labels + captured predictions + card -> reports, states, verdicts, quality page
"""
