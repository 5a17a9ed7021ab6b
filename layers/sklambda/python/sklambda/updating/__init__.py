"""Updating models safely: comparing a challenger version with the champion before it replaces it.

gate.py   the champion/challenger gate: a paired test of two versions' metric on the same labeled rows

Domain only: no S3, no Lambda event shapes.
"""
