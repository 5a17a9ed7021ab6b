"""Model quality: what the model's answers are worth once the true labels are known.

fairness.py      metrics per segment (group of a categorical feature), gaps, fairness differences, flags
"""
