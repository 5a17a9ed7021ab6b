"""Signing model cards with an asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256).

Asymmetric rather than HMAC: publishing needs kms:Sign while the predict function's role holds only
kms:Verify, and the public key can be exported so auditors can check an artifact without AWS access.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.card import ModelCard, Signature
from sklambda.errors import ModelRefused

ALGORITHM = "ECDSA_SHA_256"


class CardSigner:
    def __init__(self, key_id: str, kms: Callable[[], Any] = lambda: aws.client("kms")) -> None:
        self.key_id = key_id
        self._kms = kms

    def sign(self, card: ModelCard) -> ModelCard:
        resp = self._kms().sign(
            KeyId=self.key_id, Message=card.signing_message(), MessageType="RAW", SigningAlgorithm=ALGORITHM
        )
        value = base64.b64encode(resp["Signature"]).decode()
        return card.with_signature(Signature(key_id=resp.get("KeyId", self.key_id), algorithm=ALGORITHM, value=value))


class CardVerifier:
    """Verifies with the key the runtime is configured to trust, never the key a card claims."""

    def __init__(self, key_id: str, kms: Callable[[], Any] = lambda: aws.client("kms")) -> None:
        self.key_id = key_id
        self._kms = kms

    def verify(self, card: ModelCard) -> None:
        where = f"model {card.name!r} version {card.version!r}"
        if card.signature is None:
            raise ModelRefused(f"{where} is not signed", reason="unsigned")
        if card.signature.algorithm != ALGORITHM:
            raise ModelRefused(
                f"{where} is signed with {card.signature.algorithm}, expected {ALGORITHM}", reason="bad_signature"
            )
        try:
            signature = base64.b64decode(card.signature.value, validate=True)
            resp = self._kms().verify(
                KeyId=self.key_id,
                Message=card.signing_message(),
                MessageType="RAW",
                Signature=signature,
                SigningAlgorithm=ALGORITHM,
            )
            valid = bool(resp.get("SignatureValid"))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "KMSInvalidSignatureException":
                raise
            valid = False
        except ValueError:  # not base64
            valid = False
        if not valid:
            raise ModelRefused(
                f"{where} failed signature verification: the model card or artifact was changed after publishing",
                reason="bad_signature",
            )
