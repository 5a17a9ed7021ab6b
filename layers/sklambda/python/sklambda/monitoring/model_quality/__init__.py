"""Model quality: how well a published model performs in production, once labels are known and before.

estimation.py    performance estimated before labels arrive (CBPE, binary classifiers), from the card's calibration map
fairness.py      metrics per segment (group of a categorical feature), gaps, fairness differences, flags
"""
