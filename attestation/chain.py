"""Certificate chain of a Nitro document: leaf -> ``cabundle`` (reversed) -> pinned root.

The chain is checked with ``cryptography``'s X.509 objects; we do not parse or verify X.509
ourselves. We walk the path by hand instead of using ``cryptography.x509.verification`` because its
policies are Web-PKI/TLS ones (server/client names, EKU), while a Nitro chain is a fixed, ordered
path: building it ourselves lets each refusal name its step and lets a document be checked at its
own timestamp.

Steps are counted from the leaf: step 0 is the document's certificate, step ``k`` (1 <= k <= n) is
``cabundle[n - k]``, so step ``n`` is ``cabundle[0]``, which must be a pinned root (its DER's SHA-256
is in :class:`~attestation.roots.TrustedRoots`). For each link (RFC 5280 §6.1, restricted to what
this fixed path needs):

* every certificate is valid at the chosen instant;
* every certificate has no critical extension other than basicConstraints and keyUsage (an
  unknown critical extension must make a relying party refuse the certificate, RFC 5280 §4.2);
* every issuer is a CA (basicConstraints ``cA = TRUE``), may sign certificates (keyUsage
  ``keyCertSign``), and its ``pathLenConstraint`` allows the CAs below it;
* each certificate's name chains to its issuer's and its signature verifies with the issuer's key
  (``Certificate.verify_directly_issued_by``);
* the leaf is not a CA, may sign (keyUsage ``digitalSignature`` when present), and has a P-384
  key: the document is ES384.

The root's self-signature is not checked: it is trusted because its bytes are pinned.
The work is split at the leaf so that the intermediate part (long-lived, shared by every document
of a host) and the leaf part (shared by every document of an enclave) can be cached separately.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from attestation.chain_cache import ValidityWindow
from attestation.errors import CertificateNotValidAt, ChainInvalid, UntrustedRoot
from attestation.roots import TrustedRoots, certificate_fingerprint

__all__ = [
    "IntermediateChain",
    "LeafChain",
    "complete_chain",
    "leaf_public_key",
    "link_leaf",
    "load_leaf",
    "verify_intermediates",
]

_HANDLED_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})


@dataclass(frozen=True, slots=True)
class IntermediateChain:
    """``cabundle`` verified from its last entry up to a pinned root.

    ``issuer`` is step 1, the CA that must have issued the leaf; ``window`` is the intersection of
    the validity windows of steps 1..n.
    """

    issuer: x509.Certificate
    depth: int
    root_fingerprint: str
    window: ValidityWindow


@dataclass(frozen=True, slots=True)
class LeafChain:
    """A leaf verified against an :class:`IntermediateChain`: the whole chain holds.

    ``window`` covers every certificate of the chain; ``leaf_window`` only the leaf's.
    """

    leaf: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    root_fingerprint: str
    leaf_window: ValidityWindow
    window: ValidityWindow


def _load(step: int, der: bytes) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise ChainInvalid(step, "not a valid DER X.509 certificate") from None
    if cert.serial_number <= 0:  # RFC 5280 §4.1.2.2; cryptography only warns (for now)
        raise ChainInvalid(step, "serial number is not positive")
    return cert


def _window(cert: x509.Certificate) -> ValidityWindow:
    return ValidityWindow(cert.not_valid_before_utc, cert.not_valid_after_utc)


def _check_valid_at(step: int, cert: x509.Certificate, instant: _dt.datetime) -> ValidityWindow:
    window = _window(cert)
    if not window.contains(instant):
        raise CertificateNotValidAt(step, instant, window.not_before, window.not_after)
    return window


def _extensions(step: int, cert: x509.Certificate) -> x509.Extensions:
    """The parsed extensions, refusing malformed ones and unhandled critical ones."""
    try:
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise ChainInvalid(step, f"malformed extensions ({exc})") from None
    for extension in extensions:
        if extension.critical and extension.oid not in _HANDLED_CRITICAL:
            raise ChainInvalid(step, f"unhandled critical extension {extension.oid.dotted_string}")
    return extensions


def _check_ca(step: int, cert: x509.Certificate, cas_below: int) -> None:
    """``cert`` (at ``step``) may issue certificates, with ``cas_below`` CAs under it."""
    extensions = _extensions(step, cert)
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise ChainInvalid(step, "issuer has no basicConstraints: not a CA") from None
    if not constraints.ca:
        raise ChainInvalid(step, "issuer is not a CA (basicConstraints cA is false)")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise ChainInvalid(
            step, f"pathLenConstraint {constraints.path_length} exceeded ({cas_below} CAs below)"
        )
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ChainInvalid(step, "issuer has no keyUsage extension") from None
    if not usage.key_cert_sign:
        raise ChainInvalid(step, "issuer keyUsage lacks keyCertSign")


def _check_signed_by(step: int, cert: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        raise ChainInvalid(step, f"signature by step {step + 1} does not verify") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ChainInvalid(step, f"not issued by step {step + 1} ({exc})") from None


def verify_intermediates(
    cabundle: Sequence[bytes],
    roots: TrustedRoots,
    instant: _dt.datetime,
    executor: Executor | None = None,
    leaf: x509.Certificate | None = None,
) -> IntermediateChain:
    """Verify steps 1..n (``cabundle``, root first) at ``instant``; raise :class:`ChainInvalid`.

    With an ``executor``, the link signatures are checked concurrently (same result and errors).
    With a ``leaf``, its link to step 1 is checked in the same batch (last, so a broken
    intermediate is reported first); then finish with :func:`complete_chain`, not
    :func:`link_leaf`. The result does not depend on the leaf and may be cached for other leaves.
    """
    depth = len(cabundle)
    if depth == 0:
        raise ChainInvalid(1, "empty cabundle")
    fingerprint = certificate_fingerprint(cabundle[0])
    root = roots.get(fingerprint)
    if root is None:
        raise UntrustedRoot(depth, fingerprint)
    # certs[step] for step 1..n; index 0 is unused (the leaf is handled by link_leaf).
    certs: list[x509.Certificate] = [root]
    for step in range(1, depth):
        certs.append(_load(step, cabundle[depth - step]))
    certs.append(root)
    window = _check_valid_at(depth, root, instant)
    for step in range(1, depth):
        window = window.intersect(_check_valid_at(step, certs[step], instant))
    for step in range(depth, 0, -1):
        _check_ca(step, certs[step], cas_below=step - 1)
    # Top-down, as trust flows: a forged certificate fails at its own link, never after
    # verifying the links below it.
    links = [(step, certs[step], certs[step + 1]) for step in range(depth - 1, 0, -1)]
    if leaf is not None:
        links.append((0, leaf, certs[1]))
    if executor is None:
        for step, cert, issuer in links:
            _check_signed_by(step, cert, issuer)
    else:
        # The signature checks are independent and release the GIL: run them side by side, then
        # report the first failure in the same top-down order as the serial path.
        futures = [executor.submit(_check_signed_by, *link) for link in links]
        for future in futures:
            future.result()
    return IntermediateChain(
        issuer=certs[1], depth=depth, root_fingerprint=fingerprint, window=window
    )


def load_leaf(der: bytes, instant: _dt.datetime) -> x509.Certificate:
    """Parse the leaf (step 0) and check it is valid at ``instant``; cheap, so done first."""
    leaf = _load(0, der)
    _check_valid_at(0, leaf, instant)
    return leaf


def leaf_public_key(leaf: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The leaf's own constraints (not a CA, may sign, P-384 key); returns its key."""
    extensions = _extensions(0, leaf)
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise ChainInvalid(0, "leaf is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise ChainInvalid(0, "leaf keyUsage lacks digitalSignature")
    try:
        public_key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise ChainInvalid(0, "leaf public key cannot be parsed") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP384R1
    ):
        raise ChainInvalid(0, "leaf key is not a P-384 EC key (ES384 needs one)")
    return public_key


def link_leaf(
    leaf: x509.Certificate, public_key: ec.EllipticCurvePublicKey, chain: IntermediateChain
) -> LeafChain:
    """Check that step 1 issued the leaf (whose key :func:`leaf_public_key` vetted)."""
    _check_signed_by(0, leaf, chain.issuer)
    return complete_chain(leaf, public_key, chain)


def complete_chain(
    leaf: x509.Certificate, public_key: ec.EllipticCurvePublicKey, chain: IntermediateChain
) -> LeafChain:
    """Assemble the verified whole; only after the leaf's link was checked (see above)."""
    leaf_window = _window(leaf)
    return LeafChain(
        leaf=leaf,
        public_key=public_key,
        root_fingerprint=chain.root_fingerprint,
        leaf_window=leaf_window,
        window=chain.window.intersect(leaf_window),
    )
