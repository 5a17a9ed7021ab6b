"""Watching production: privacy-safe capture of scored rows, windows of captured rows, drift against the baseline.

capture.py       capture records (pseudonymized, pii dropped) written to the logs for Firehose
privacy.py       erasure of one data subject's captured rows
windows.py       reading a window of capture lines from S3, quarantining malformed ones
drift/           the drift statistics and verdict, the reports, the history and monitoring page (domain only: no S3)
drift_check.py   the scheduled check: window + card baseline -> reports, state, verdict, history, monitoring page
"""
