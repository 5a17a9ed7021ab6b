"""Benchmarks of the sklambda serving path; `make bench` runs them all and rewrites BENCHMARKS.md.

- warm:   single-row latency through the predict handler vs predict_proba in the same process
- cold:   a fresh process to its first prediction through the handler vs a bare joblib process
- bundle: unzipped sizes of the Lambda layers and function code, from the layer build

Every result is a ratio against a baseline measured in the same run, interleaved with it: the machine is shared.
"""
