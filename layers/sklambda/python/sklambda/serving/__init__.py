"""Answering requests: load a verified model once per container, validate rows, predict, explain, warn on data quality.

server.py         ModelServer / LoadedModel: resolve an alias, verify, unpickle, cache per container
contracts.py      the REST request and response bodies (pydantic)
oip.py            the Open Inference Protocol v2 codec: JSON and binary tensors, missing values, metadata
openapi.py        the OpenAPI 3.1 description of the API, from the request models and a model's card
scoring.py        Scorer: rows -> predictions, probabilities, data-quality warnings
data_quality.py   per-row data-quality warnings against the card's training ranges and categories
explain.py        exact and sampled Shapley values against the card's background sample
background.py     the background sample: taken at publish, read when explaining
"""
