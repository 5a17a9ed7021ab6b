"""Updating models safely: comparing a challenger version with the champion before it replaces it.

gate.py           the champion/challenger gate: a paired test of two versions' metric on the same labeled rows
versions.py       the gate between two published versions, loaded verified from the registry
traffic.py        an alias's captured requests since a rollout started: row records and error records per version
rollout.py        the canary verdict (error rate, latency, quality against bounds) and its report
shadow.py         replaying captured requests on a shadow version and on the stable one, and comparing them
page.py           the canary verdict and the shadow comparison as self-contained HTML pages
rollout_check.py  one alias's check: verdict, conditional rollback, reports, shadow comparison

gate.py, page.py and the verdict itself (rollout.evaluate_canary) are domain only: no S3, no Lambda event shapes.
"""
