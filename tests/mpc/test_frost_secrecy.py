"""Secrecy canary: no secret value's hex appears in any repr, str, log line or error message.

Runs a DKG and FROST signing with DEBUG logging captured, then looks for every secret scalar
(polynomial coefficients, dealt shares, signing shares, nonces) in everything printable.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.round1 import part1
from enclave.mpc.dkg.round2 import part2
from enclave.mpc.dkg.round3 import finalize, part3
from enclave.mpc.errors import InvalidShare, MpcError, NonceReuse, SecretError
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.frost.round1 import commit
from enclave.mpc.frost.round2 import SigningPackage, sign
from enclave.mpc.keys import KeyShare

from .dkg_helpers import identifiers
from .rng import SeededRandom


@pytest.mark.parametrize(
    "suite", [FROST_ED25519_SHA512, FROST_SECP256K1_SHA256], ids=["ed25519", "secp256k1"]
)
def test_no_secret_leaks_into_reprs_logs_or_errors(
    suite: Ciphersuite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    g = suite.group
    rng = SeededRandom(31)
    ids = identifiers(g, 3)
    params = DkgParameters(g, 1, ids, b"canary")
    printable: list[object] = []
    secrets: list[bytes] = []

    r1 = {i: part1(params, i, rng) for i in ids}
    for state, _ in r1.values():
        secrets.extend(c.to_bytes() for c in state.polynomial.coefficients)
        printable.extend([state, state.polynomial])
    r2 = {i: part2(r1[i][0], {j: r1[j][1] for j in ids if j != i}) for i in ids}
    for state2, out in r2.values():
        secrets.append(state2.own_share.to_bytes())
        secrets.extend(p.share.to_bytes() for p in out.values())
        printable.extend([state2, *out.values()])
    # A tampered share: the resulting error must not carry the share either.
    victim, dealer = ids[0], ids[1]
    bad = dataclasses.replace(r2[dealer][1][victim], share=g.scalar(987654321))
    secrets.append(bad.share.to_bytes())
    with pytest.raises(InvalidShare) as info:
        part3(r2[victim][0], {dealer: bad, ids[2]: r2[ids[2]][1][victim]})
    printable.append(info.value)
    r3 = {i: part3(r2[i][0], {j: r2[j][1][i] for j in ids if j != i}) for i in ids}
    keys: dict[object, KeyShare] = {}
    for i in ids:
        keys[i] = finalize(r3[i][0], {j: r3[j][1] for j in ids if j != i})
        secrets.append(keys[i].secret_share.to_bytes())
        printable.extend([r3[i][0], keys[i]])

    nonces, commitments = {}, {}
    for i in ids[:2]:
        nonces[i], commitments[i] = commit(suite, keys[i], b"canary-sign", rng)
        printable.append(nonces[i])
    package = SigningPackage(suite, b"canary-sign", commitments, b"message")
    for i in ids[:2]:
        sign(package, nonces[i], keys[i])
    with pytest.raises(NonceReuse) as reuse:
        sign(package, nonces[ids[0]], keys[ids[0]])
    printable.append(reuse.value)
    with pytest.raises(SecretError) as opaque:
        KeyShare(ids[0], keys[ids[1]].secret_share, keys[ids[0]].public)
    assert str(opaque.value) == SecretError.MESSAGE
    printable.append(opaque.value)

    texts = [repr(o) for o in printable] + [str(o) for o in printable]
    texts += [r.getMessage() for r in caplog.records]
    haystack = "\n".join(texts).lower()
    for secret in secrets:
        ints = (str(int.from_bytes(secret, "big")), str(int.from_bytes(secret, "little")))
        for form in (secret.hex(), secret[::-1].hex(), *ints):
            assert form not in haystack
    assert all(isinstance(e, MpcError) for e in (info.value, reuse.value, opaque.value))
