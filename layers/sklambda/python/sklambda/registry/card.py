"""The model card (manifest): everything known about one immutable model version.

The canonical JSON of the card, minus its signature, is what gets signed, so the signature covers the
schema, metrics and the artifact's sha256 and size.

Optional sections (`importance`, `explanation`, `decision`, `documentation`, `quality`, `estimation`, `segments`,
...) were added after the first cards were published. A section that is None is left out of `to_dict`, so a card
written before it existed keeps the exact canonical JSON it was signed with and still verifies. The reverse does not
hold: a runtime older than a section drops it when reading, so a card carrying it fails that runtime's signature
check (deploy the layer before publishing with a newer publisher). Their shapes:

    importance     {"method": "permutation", "split": "holdout"|"training", "scoring": "roc_auc"|"accuracy"|"r2",
                    "n_repeats": int, "rows": int, "seed": int,
                    "features": [{"name", "mean", "std"}, ...]}   mean score drop per original input, largest first
    explanation    {"background": [records], "size": int, "pii_replaced": [names]}   not in `public_dict`
    decision       {"positive_class", "threshold", "rule", "source": "default"|"user"|"costs",
                    "costs": {"false_positive", "false_negative"} | None, ["holdout_expected_cost" |
                    "training_expected_cost"]}   binary classifiers with predict_proba only
    documentation  {"owner": str, "intended_use": str, "limitations": [str]}
    quality        {"warnings": [{"check", "feature", "message"}], "checks_passed": [names]}
    code           {"files": [{"path", "sha256", "size"}], "modules": [top-level names]}   user code shipped with
                   the model (sklambda.registry.usercode), stored under the version's code/ prefix
    parity         {"rows": int, "routes": [names], "max_abs_difference": float, "max_rel_difference": float,
                    "tolerance": {"rtol", "atol"}, "runtime": {"fingerprint", "python", "platform", "scikit-learn"},
                    "needs": {"modules": [names], "sklearn_versions": [versions]}, "seconds": float}
                   the publish-time parity gate (sklambda.publishing.parity): what was checked and where
    estimation     {"method": "cbpe", "positive_index", "threshold", "calibration": {"method": "isotonic", "x", "y"},
                    "holdout": {"rows", "accuracy", "f1", "roc_auc", "positive_rate"}}   binary classifiers with
                   predict_proba published with a holdout: the calibration map that estimates performance before
                   labels arrive (sklambda.monitoring.model_quality.estimation); multiclass ones:
                   {"method": "cbpe_multiclass", "classes": k, "prediction": "argmax", "calibrations": [one map per
                    class], "holdout": {"rows", "accuracy", "f1_macro", "roc_auc_ovr", "class_shares"}}
    segments       {"split", "task", "rows", "positive_label", "min_group_rows", "confidence", "bounds": {name: gap},
                    "features": [{"name", "sensitive", "groups": [{"group", "rows", "positives", "too_small",
                    "metrics": {name: value|None}, "intervals": {name: [low, high]}}], "gaps": [{"name", "gap",
                    "highest", "lowest", "interval", "bound", "flagged"}]}], "flagged": [{"feature", "name", "gap"}]}
                   metrics per group of the categorical columns named at publish, fairness differences for the
                   sensitive ones (sklambda.monitoring.model_quality.fairness); never a pii column
    compiled       {"used": true, "format": "sklambda.compiled/v1", "artifact": {"key", "sha256", "size"},
                    "steps": [names], "agreement": {"rows", "routes", "max_abs_difference", "class_flips",
                    "tolerance"}} when the predict function serves the version with the compiled evaluator
                   (sklambda.compiled), or {"used": false, "reason": str} when publish did not compile it and
                   scikit-learn serves it; the compiled artifact is pinned by its sha256 here, so the signature
                   covers it as it covers the joblib artifact
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sklambda.registry.schema import InputSchema

CARD_FORMAT = "sklambda.registry.card/v1"
CLASSIFICATION, REGRESSION = "classification", "regression"
# Sections a card may lack (older cards): omitted from the signed JSON when None, see the module docstring.
OPTIONAL_SECTIONS = (
    "importance",
    "explanation",
    "decision",
    "documentation",
    "quality",
    "code",
    "parity",
    "estimation",
    "segments",
    "compiled",
)


@dataclass(frozen=True)
class ArtifactRef:
    """Where a version's artifact is and what it must be.

    key: its S3 key in the registry bucket.
    sha256: hex digest of the artifact bytes, checked before unpickling.
    size: length in bytes.
    format: how it was serialized ("joblib").
    """

    key: str
    sha256: str
    size: int
    format: str = "joblib"

    def to_dict(self) -> dict:
        """The card's `artifact` section."""
        return {"key": self.key, "sha256": self.sha256, "size": self.size, "format": self.format}


@dataclass(frozen=True)
class Signature:
    """A card's signature: the KMS key that made it, the algorithm (ECDSA_SHA_256) and the DER-encoded signature as
    base64.
    """

    key_id: str
    algorithm: str
    value: str  # base64

    def to_dict(self) -> dict:
        """The card's `signature` section."""
        return {"key_id": self.key_id, "algorithm": self.algorithm, "value": self.value}


@dataclass(frozen=True)
class ModelCard:
    """Everything known about one immutable model version, as stored (signed) next to its artifact.

    name, version: where it lives in the registry.
    task: "classification" or "regression". classes: the estimator's `classes_` (classifiers only), as JSON values.
    target: the name of the column the model predicts, when known.
    estimator: the fitted object's class, with a pipeline's steps, e.g.
        "sklearn.pipeline.Pipeline(prep=ColumnTransformer -> model=LogisticRegression)".
    library_versions: python, scikit-learn, joblib, numpy, pandas, scipy at publish; the runtime refuses a model pickled
        with another scikit-learn.
    input_schema: the features a request must send.
    metrics: scikit-learn metrics on the holdout split (training when no holdout was given), with "split" and row
        counts. baseline: per-feature training statistics the drift check compares with.
    artifact: the artifact's key, sha256 and size. created_at: ISO 8601 UTC.
    signature: None until `CardSigner.sign`; the optional sections are described in the module docstring.
    """

    name: str
    version: str
    task: str
    classes: tuple | None
    target: str | None
    estimator: str
    library_versions: Mapping[str, str]
    input_schema: InputSchema
    metrics: Mapping[str, Any]
    baseline: Mapping[str, Any]
    artifact: ArtifactRef
    created_at: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    importance: Mapping[str, Any] | None = None
    explanation: Mapping[str, Any] | None = None
    decision: Mapping[str, Any] | None = None
    documentation: Mapping[str, Any] | None = None
    quality: Mapping[str, Any] | None = None
    code: Mapping[str, Any] | None = None
    parity: Mapping[str, Any] | None = None
    estimation: Mapping[str, Any] | None = None
    segments: Mapping[str, Any] | None = None
    compiled: Mapping[str, Any] | None = None

    @property
    def compiled_artifact(self) -> ArtifactRef | None:
        """The compiled artifact the predict function serves instead of unpickling the joblib one (`compiled` section,
        used), or None: not compiled, or a card published before compiling existed."""
        section = self.compiled or {}
        if not section.get("used"):
            return None
        ref = section["artifact"]
        return ArtifactRef(ref["key"], ref["sha256"], int(ref["size"]), section.get("format", "compiled"))

    @property
    def sklearn_version(self) -> str:
        """The scikit-learn version the model was pickled with ("unknown" if the card does not say)."""
        return self.library_versions.get("scikit-learn", "unknown")

    def to_dict(self, *, include_signature: bool = True) -> dict:
        """The card as JSON-ready dict; optional sections only when present (see the module docstring).

        include_signature=False gives what is signed.
        """
        out = {
            "format": CARD_FORMAT,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "classes": list(self.classes) if self.classes is not None else None,
            "target": self.target,
            "estimator": self.estimator,
            "library_versions": dict(self.library_versions),
            "input_schema": self.input_schema.to_dict(),
            "metrics": dict(self.metrics),
            "baseline": dict(self.baseline),
            "artifact": self.artifact.to_dict(),
            "created_at": self.created_at,
            "description": self.description,
            "tags": dict(self.tags),
        }
        for section in OPTIONAL_SECTIONS:
            value = getattr(self, section)
            if value is not None:
                out[section] = dict(value)
        if include_signature:
            out["signature"] = self.signature.to_dict() if self.signature else None
        return out

    def public_dict(self) -> dict:
        """What the API shows: no baseline histograms, no background rows, no storage keys, no signature bytes.

        Nothing about the signature either: whether it verified is for the reader that checked it to say."""
        d = self.to_dict(include_signature=False)
        d.pop("baseline")
        d.pop("explanation", None)
        d["artifact"] = {"sha256": self.artifact.sha256, "size": self.artifact.size, "format": self.artifact.format}
        if "artifact" in d.get("compiled", {}):
            d["compiled"] = {
                **d["compiled"],
                "artifact": {k: v for k, v in d["compiled"]["artifact"].items() if k != "key"},
            }
        return d

    def signing_message(self) -> bytes:
        """Bytes given to KMS Sign/Verify: a fixed prefix plus the digest of the canonical card."""
        digest = hashlib.sha256(canonical_json(self.to_dict(include_signature=False))).hexdigest()
        return f"sklambda-card-v1:{self.name}:{self.version}:{digest}".encode()

    def with_signature(self, signature: Signature) -> ModelCard:
        """A copy of the card carrying `signature`."""
        return replace(self, signature=signature)

    def to_json(self) -> bytes:
        """The stored card.json: the dict of `to_dict`, keys sorted, indented; NaN/Infinity refused (ValueError)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False).encode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """A card from its JSON dict.

        Raises ValueError for another card format than CARD_FORMAT; KeyError or TypeError for a missing or malformed
        section (Registry.get_card turns these into ModelRefused).
        """
        if d.get("format") != CARD_FORMAT:
            raise ValueError(f"unsupported model card format {d.get('format')!r}, expected {CARD_FORMAT!r}")
        sig = d.get("signature")
        classes = d.get("classes")
        return cls(
            name=d["name"],
            version=d["version"],
            task=d["task"],
            classes=tuple(classes) if classes is not None else None,
            target=d.get("target"),
            estimator=d["estimator"],
            library_versions=dict(d["library_versions"]),
            input_schema=InputSchema.from_dict(d["input_schema"]),
            metrics=dict(d.get("metrics") or {}),
            baseline=dict(d.get("baseline") or {}),
            artifact=ArtifactRef(**d["artifact"]),
            created_at=d["created_at"],
            description=d.get("description", ""),
            tags=dict(d.get("tags") or {}),
            signature=Signature(**sig) if sig else None,
            **{s: dict(d[s]) for s in OPTIONAL_SECTIONS if d.get(s) is not None},
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ModelCard:
        """A card from card.json bytes (see `from_dict`; json.JSONDecodeError, a ValueError, for bytes that are not
        JSON).
        """
        return cls.from_dict(json.loads(raw))


def canonical_json(obj: Any) -> bytes:
    """The one byte form of `obj` that is hashed for signing: keys sorted, no whitespace, ASCII only, NaN refused
    (ValueError).
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
