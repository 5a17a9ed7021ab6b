"""Model quality: how well a published model performs in production.

- estimation: performance estimated before labels arrive (CBPE, classifiers), from the card's calibration map
"""
