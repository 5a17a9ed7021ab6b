"""Ground truth: the labels callers send for predictions they were served (by `inference_id`), stored by arrival day.

store.py   the layout in the data bucket, idempotent writes, and reading the labels that arrived in a window

Domain only: no Lambda event shapes.
"""
