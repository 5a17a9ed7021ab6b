"""Signing model cards with an asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256), and reading them verified.

Asymmetric rather than HMAC: publishing needs kms:Sign while the predict function's role holds only
kms:Verify, and the public key can be exported so auditors can check an artifact without AWS access.

Every reader of a card (the API's model info, `sklambda models show|card`, the drift check) goes through
`read_card`: it either verifies the card with the trusted key or says, in the `SignatureCheck` it returns,
that it did not. Nothing shows a card's own claim to be signed as if it had been checked.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.errors import ModelRefused
from sklambda.registry.card import ModelCard, Signature

if TYPE_CHECKING:
    from sklambda.registry.store import Registry

ALGORITHM = "ECDSA_SHA_256"


@dataclass(frozen=True)
class SignatureCheck:
    """What a reader checked: `verified` with the trusted `key_id`, or not verified at all (and why not)."""

    verified: bool
    key_id: str | None = None
    algorithm: str | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        """What the API and the CLI show as the card's `signature`: {"verified", "key_id", "algorithm"[, "note"]}."""
        out: dict = {"verified": self.verified, "key_id": self.key_id, "algorithm": self.algorithm}
        if self.note:
            out["note"] = self.note
        return out


NOT_VERIFIED = SignatureCheck(False, note="the signature was not checked: do not trust this card's contents")


class CardSigner:
    """Signs cards with an asymmetric KMS key (ECC_NIST_P256); needs kms:Sign on `key_id` (a key id, ARN or alias).

    `kms` returns the boto3 KMS client to use (default: the shared one from sklambda.aws).
    """

    def __init__(self, key_id: str, kms: Callable[[], Any] = lambda: aws.client("kms")) -> None:
        self.key_id = key_id
        self._kms = kms

    def sign(self, card: ModelCard) -> ModelCard:
        """A copy of `card` carrying an ECDSA_SHA_256 signature of `card.signing_message()` made by KMS Sign
        (MessageType RAW).

        The signature's key_id is the key ARN KMS reports. KMS errors (no permission, disabled key) propagate as
        botocore's ClientError.
        """
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
        """Return if `card` was signed by the trusted key; raise ModelRefused otherwise (HTTP 503).

        The signature is checked by KMS Verify (ECDSA_SHA_256, MessageType RAW) over `card.signing_message()`, which
        covers the canonical card without its signature: schema, metrics and the artifact's sha256 and size, so the
        artifact is pinned too. Reasons: `unsigned` (no signature), `bad_signature` (another algorithm, not base64, or
        KMS answers KMSInvalidSignatureException: the card was changed or signed with another key). Other KMS errors (no
        kms:Verify permission, throttling) propagate as botocore's ClientError.
        """
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

    def passed(self) -> SignatureCheck:
        """The record of a successful `verify` with this verifier's key."""
        return SignatureCheck(True, key_id=self.key_id, algorithm=ALGORITHM)


def read_card(
    registry: Registry, verifier: CardVerifier | None, name: str, version: str
) -> tuple[ModelCard, SignatureCheck]:
    """The card of `name` `version` and what was checked about it.

    With a verifier, the card is verified with the verifier's (trusted) key: returns it with a verified
    `SignatureCheck`, or raises ModelRefused (reason `unsigned` or `bad_signature`) without returning it.
    With `verifier=None` the caller asked not to verify: the card comes back with `NOT_VERIFIED`, and the
    caller must show it as such. Raises ModelNotFound for an unknown version, ModelRefused for an unreadable card.
    """
    card = registry.get_card(name, version)
    if verifier is None:
        return card, NOT_VERIFIED
    verifier.verify(card)
    return card, verifier.passed()
