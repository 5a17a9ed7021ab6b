"""The model registry in S3: immutable versions (artifact, model card, user code), aliases, signatures.

card.py       ModelCard: the signed description of a version (schema, metrics, baseline, parity, code)
schema.py     InputSchema / FeatureSpec: the features a model takes, inferred at publish, enforced per request
store.py      Registry: versions and aliases in S3 with conditional writes
signing.py    CardSigner / CardVerifier: KMS signatures over the card, checked before anything is unpickled
usercode.py   the model's own Python modules, shipped with the version and verified by hash
"""
