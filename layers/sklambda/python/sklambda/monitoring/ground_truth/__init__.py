"""Ground truth: the labels callers send for predictions they were served (by `inference_id`), stored by arrival day.

store.py   the layout in the data bucket, idempotent writes, and reading the labels that arrived in a window
labels.py  label rows checked against a model's card (ids, classes, numbers, times, duplicates), the card by alias
files.py   label files under feedback/<model>/: streamed, checked row by row, stored in chunks, quarantine, summary

Domain only: no Lambda event shapes.
"""
