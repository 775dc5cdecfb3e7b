"""The errors the gateway answers with, in AWS KMS's own shapes.

A KMS client (botocore) reads the JSON body's ``__type`` and ``message``; the HTTP status says
whether the caller (400) or the service (500) is at fault, and botocore retries only the latter.
Each class here is one ``__type`` that KMS documents for the operations the gateway serves; the
mapping from the SDK's error tree lives in :mod:`keyshard.gateway.operations`.

Class ``FooError`` answers KMS's ``FooException`` (``InternalError``: ``KMSInternalException``,
``InvalidSignatureError``: ``KMSInvalidSignatureException``, ``SignatureMismatchError``: SigV4's
``InvalidSignatureException``)::

    KmsError                       base: ``type_name``, ``status``, ``message``
    ├── (400) AccessDeniedException, AlreadyExistsException,
    │         IncorrectKeyException, InvalidAliasNameException,
    │         InvalidCiphertextException, InvalidKeyUsageException, InvalidMarkerException,
    │         KMSInvalidSignatureException, NotFoundException, UnsupportedOperationException,
    │         ValidationException, UnrecognizedClientException, InvalidSignatureException,
    │         UnknownOperationException, SerializationException
    └── (500) KMSInternalException, KeyUnavailableException, DependencyTimeoutException
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "DependencyTimeoutError",
    "DisabledError",
    "IncorrectKeyError",
    "InternalError",
    "InvalidAliasNameError",
    "InvalidCiphertextError",
    "InvalidKeyUsageError",
    "InvalidMarkerError",
    "InvalidSignatureError",
    "InvalidStateError",
    "KeyUnavailableError",
    "KmsError",
    "NotFoundError",
    "SerializationError",
    "SignatureMismatchError",
    "UnknownOperationError",
    "UnrecognizedClientError",
    "UnsupportedOperationError",
    "ValidationError",
]


class KmsError(Exception):
    """One KMS error: its wire ``type_name`` and HTTP ``status``; the message is public."""

    type_name: ClassVar[str] = "KMSInternalException"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        return {"__type": self.type_name, "message": self.message}


class AccessDeniedError(KmsError):
    type_name = "AccessDeniedException"
    status = 400


class AlreadyExistsError(KmsError):
    type_name = "AlreadyExistsException"
    status = 400


class IncorrectKeyError(KmsError):
    type_name = "IncorrectKeyException"
    status = 400


class InvalidAliasNameError(KmsError):
    type_name = "InvalidAliasNameException"
    status = 400


class InvalidCiphertextError(KmsError):
    type_name = "InvalidCiphertextException"
    status = 400


class InvalidKeyUsageError(KmsError):
    type_name = "InvalidKeyUsageException"
    status = 400


class InvalidMarkerError(KmsError):
    type_name = "InvalidMarkerException"
    status = 400


class InvalidSignatureError(KmsError):
    """A signature that does not verify (Verify's answer): not an authentication failure."""

    type_name = "KMSInvalidSignatureException"
    status = 400


class NotFoundError(KmsError):
    type_name = "NotFoundException"
    status = 400


class UnsupportedOperationError(KmsError):
    type_name = "UnsupportedOperationException"
    status = 400


class ValidationError(KmsError):
    type_name = "ValidationException"
    status = 400


class UnrecognizedClientError(KmsError):
    """An access key the gateway does not know (what AWS answers for one)."""

    type_name = "UnrecognizedClientException"
    status = 400


class SignatureMismatchError(KmsError):
    """A SigV4 signature that does not verify, or a bad scope or date."""

    type_name = "InvalidSignatureException"
    status = 400


class UnknownOperationError(KmsError):
    type_name = "UnknownOperationException"
    status = 400


class SerializationError(KmsError):
    type_name = "SerializationException"
    status = 400


class DisabledError(KmsError):
    """The key is disabled (``DisableKey``): enable it to use it."""

    type_name = "DisabledException"
    status = 400


class InvalidStateError(KmsError):
    """The key's state forbids the request (e.g. pending deletion)."""

    type_name = "KMSInvalidStateException"
    status = 400


class InternalError(KmsError):
    type_name = "KMSInternalException"
    status = 500


class KeyUnavailableError(KmsError):
    """Too few of the key's holders reachable (KMS: the key's store is unavailable)."""

    type_name = "KeyUnavailableException"
    status = 500


class DependencyTimeoutError(KmsError):
    type_name = "DependencyTimeoutException"
    status = 503
