"""Benchmarks of the sklambda serving path; `make bench` runs them all and rewrites BENCHMARKS.md.

- warm:   single-row latency through the predict handler vs predict_proba in the same process
- cold:   a fresh process to its first prediction through the handler vs a bare joblib process
- bundle: unzipped sizes of the Lambda layers and function code, from the layer build
- batch:   the batch function (S3 → S3 through moto) vs a plain pandas script, and its peak memory
- drift:   the drift check's speed and memory on 1,000,000 rows, its false-alarm and detection rates
- model_quality: false degradation alarms, detection of concept drift, joining 100,000 labels with 1,000,000
  predictions and computing every metric
- capture: a warm prediction with prediction capture on vs off
- explain: single-row explanation latency of a 100-tree forest with 20 features, and accuracy
- parity:  what the publish-time parity gate adds to a publish
- load:    the local API under 50 clients
- estimation: CBPE's estimated accuracy vs the realized one on covariate-shifted windows, vs the holdout accuracy
- rollout: false automatic rollbacks of an equal canary (checked once and repeatedly) and detection of 3x errors
- compiled: the compiled serving path vs predict_proba, the scikit-learn path, onnxruntime and MLServer: warm
  latency, agreement on unseen rows, cold start, bundle per path, billed duration at 1,024 MB

Each kind is a module here; batch, capture, drift, estimation, model_quality and explain also run alone
(`python -m sklambda_infra.bench.drift`).

Every result is a ratio against a baseline measured in the same run, interleaved with it: the machine is shared.
"""
