"""Every error the ``attestation`` package raises, in one tree.

Checks raise; nothing in this package returns ``False`` for "did not verify". Errors about public
data (the document, its certificates, the policy, the NSM's answers, the shape of a KMS envelope)
carry the culprit: field, chain step, rule, PCR index with expected and actual values. Errors about
secrets carry nothing but a fixed message and are raised ``from None``.

::

    AttestationError                      base: catch this at a process boundary
    ├── DocumentFormatError               codec refused the bytes (field, reason)
    ├── SignatureInvalid                  COSE_Sign1 ES384 signature does not verify
    ├── ChainInvalid                      certificate chain refused (step, reason)
    │   ├── CertificateNotValidAt         a certificate is expired / not yet valid at the instant
    │   └── UntrustedRoot                 the chain ends at a root that is not pinned
    ├── PolicyViolation                   verified document does not satisfy the policy (rule, ...)
    │   └── PcrMismatch                   one PCR is not among the allowed values (index, ...)
    ├── NsmError                          an NSM answered an error code or the device failed
    │   └── (refined in attestation.nsm.errors: refused with a code, bad message, device failure)
    ├── MeasurementError                  an enclave image could not be measured (path, reason)
    ├── RecipientEnvelopeError            malformed CMS EnvelopedData from KMS (public, detailed)
    └── RecipientDecryptionError          opening the envelope failed (secret: fixed message)

Chain steps are counted from the leaf: step 0 is the document's signing certificate, step 1 the
certificate that issued it (the last entry of ``cabundle``), and so on up to the pinned root.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

__all__ = [
    "AttestationError",
    "CertificateNotValidAt",
    "ChainInvalid",
    "DocumentFormatError",
    "MeasurementError",
    "NsmError",
    "PcrMismatch",
    "PolicyViolation",
    "RecipientDecryptionError",
    "RecipientEnvelopeError",
    "SignatureInvalid",
    "UntrustedRoot",
]


class AttestationError(Exception):
    """Base of every error raised by the ``attestation`` package."""


class DocumentFormatError(AttestationError):
    """The bytes are not a well-formed Nitro attestation document.

    ``field`` names the culprit (``"envelope"``, ``"protected"``, ``"payload"``, a payload key such
    as ``"pcrs"``, or ``"pcrs[3]"``); ``reason`` says what is wrong with it. The document is public
    data, so the message may quote sizes and offsets.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class SignatureInvalid(AttestationError):  # noqa: N818 -- reads as the verdict, like InvalidSignature
    """The COSE_Sign1 ES384 signature does not verify with the leaf certificate's key."""

    def __init__(self, reason: str = "COSE_Sign1 ES384 signature does not verify") -> None:
        self.reason = reason
        super().__init__(reason)


class ChainInvalid(AttestationError):  # noqa: N818 -- the verdict on the chain
    """The certificate chain from the leaf to the pinned root is refused at ``step``.

    ``step`` counts from the leaf (0) towards the root; see the module docstring.
    """

    def __init__(self, step: int, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"chain step {step}: {reason}")


class CertificateNotValidAt(ChainInvalid):
    """The certificate at ``step`` is outside its validity window at ``instant``.

    ``expired`` tells the two cases apart: ``True`` when ``instant`` is after ``not_after``,
    ``False`` when it is before ``not_before``.
    """

    def __init__(
        self,
        step: int,
        instant: _dt.datetime,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
    ) -> None:
        self.instant = instant
        self.not_before = not_before
        self.not_after = not_after
        self.expired = instant > not_after
        if self.expired:
            reason = (
                f"certificate expired at {not_after.isoformat()} (checked at {instant.isoformat()})"
            )
        else:
            reason = (
                f"certificate not valid before {not_before.isoformat()} "
                f"(checked at {instant.isoformat()})"
            )
        super().__init__(step, reason)


class UntrustedRoot(ChainInvalid):
    """The chain's root is not one of the pinned roots (SHA-256 fingerprint of its DER)."""

    def __init__(self, step: int, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__(step, f"root certificate {fingerprint} is not pinned")


class PolicyViolation(AttestationError):  # noqa: N818 -- the verdict on the policy
    """A verified document does not satisfy the policy; ``rule`` names the rule that failed.

    Rules: ``"pcr"``, ``"pcr_sets"``, ``"debug"``, ``"max_age"``, ``"future"``, ``"nonce"``,
    ``"public_key"``, ``"user_data"``.
    """

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"policy rule {rule!r}: {reason}")


class PcrMismatch(PolicyViolation):
    """PCR ``index`` holds ``actual`` (``None`` if absent), which is not among ``expected``."""

    def __init__(self, index: int, expected: Sequence[bytes], actual: bytes | None) -> None:
        self.index = index
        self.expected = tuple(expected)
        self.actual = actual
        allowed = " | ".join(value.hex() for value in self.expected)
        shown = "absent" if actual is None else actual.hex()
        super().__init__("pcr", f"PCR{index} is {shown}, expected one of: {allowed}")


class NsmError(AttestationError):
    """An NSM (the ``/dev/nsm`` device or the emulated one) answered an error or failed.

    The NSM's answers are public; subclasses may carry the NSM error code.
    """


class MeasurementError(AttestationError):
    """An enclave image could not be measured into PCRs (missing package, symlink, bad name)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RecipientEnvelopeError(AttestationError):
    """A KMS ``CiphertextForRecipient`` is not the CMS EnvelopedData we accept.

    The envelope's structure is public data, so ``reason`` may be detailed.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RecipientDecryptionError(AttestationError):
    """Opening a recipient envelope failed. Deliberately opaque: raise it ``from None``.

    Which step failed (OAEP unwrap, CBC padding, key length) would be an oracle on the secret, so
    the message is fixed and no detail is kept.
    """

    MESSAGE = "recipient envelope could not be decrypted"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)
