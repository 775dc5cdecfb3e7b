"""Threshold decryption against an active client (issue 9, items 1 and 11), on real in-process
nodes (tests/service/inprocess.py) driven by the real client code.

Item 1: an approval for one ciphertext must not open another. The attacker holds a ciphertext
``C = (E, body)`` it may not read and an approval for a ciphertext of its own making; it uses the
client-side decryption primitives (the DLEQ check of every partial, Lagrange interpolation in the
exponent, the ECIES opening), exactly what the SDK runs, but keeps the combined point.

Item 11: whatever encryption accepts, decryption accepts — one size limit, checked at encryption.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster

from enclave.mpc.decryption.ecies import (
    MAX_PLAINTEXT,
    Ciphertext,
    encrypt,
    open_with_shared_point,
)
from enclave.mpc.decryption.partial import PartialDecryption, verify_partial
from enclave.mpc.errors import SecretError
from enclave.mpc.groups import ED25519
from enclave.mpc.shamir import lagrange_coefficient
from enclave.service.handlers import OsRandom
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import InvalidInputError, RemoteError
from wire.approvals import ApprovalPolicy, Operation, decryption_digest
from wire.checks import MAX_BLOB
from wire.errors import ErrorCode
from wire.messages import DecryptPartial, Partial

FROST_SUITES = pytest.mark.parametrize("suite", ["ed25519", "secp256k1"])
SECRET = b"the payroll nobody approved"
CONTEXT = b"q3"


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


async def _redirect_an_approval(
    c: Coordinator, approver: Ed25519PrivateKey, victim: bytes
) -> bytes | dict[str, ErrorCode]:
    """The attack of item 1: what the attacker reads of ``victim``, or each node's refusal.

    ``C' = (E + r·G, any body)`` is approved (it is a ciphertext nobody minds opening); t+1
    nodes return proven partials ``x_i·(E + r·G)``, which combine to ``x·E + r·X``; subtracting
    ``r·X`` leaves ``x·E``, the shared point of ``C``.
    """
    key = await c.describe_key("k")
    group = key.public.group
    target = Ciphertext.from_bytes(victim, group)
    r = group.scalar(0x5EED)
    crafted = dataclasses.replace(
        target, ephemeral=target.ephemeral + group.base_mul(r), sealed=b"any body at all!" * 2
    ).to_bytes()
    approval = sign_approval(
        approver,
        key_name="k",
        group_public_key=key.public_key,
        operation=Operation.DECRYPT,
        digest=decryption_digest(crafted, CONTEXT),
        not_after=int(time.time()) + 600,
    ).encode()
    session = os.urandom(32)
    request = DecryptPartial("k", crafted, session, CONTEXT, (approval,))
    nodes = ["node-1", "node-2"]  # t + 1 for t = 1
    partials: dict[str, PartialDecryption] = {}
    refusals: dict[str, ErrorCode] = {}
    for node in nodes:
        try:
            reply = await (await c.link(node)).request(request)
        except RemoteError as refused:
            refusals[node] = refused.error_code
            continue
        assert isinstance(reply, Partial)
        partials[node] = PartialDecryption.from_bytes(reply.partial, group)
    if refusals:
        return refusals
    parsed = Ciphertext.from_bytes(crafted, group)
    senders = [key.identifier(n) for n in nodes]
    for node, sender in zip(nodes, senders, strict=True):
        verify_partial(key.public, parsed, sender, partials[node], session)  # proven partials
    combined = group.multi_mul(
        [
            (lagrange_coefficient(group, sender, senders), partials[node].share)
            for node, sender in zip(nodes, senders, strict=True)
        ]
    )
    shared = combined - key.public.group_public_key * r
    return open_with_shared_point(target, key.public.group_public_key, shared, CONTEXT)


@FROST_SUITES
def test_an_approval_cannot_be_redirected_to_another_ciphertext(
    cluster: InProcessCluster, suite: str
) -> None:
    """Issue 9 item 1: approving ``C' = (E + r·G, any body)`` must not open ``C = (E, body)``.

    Every node checks the encryptor's proof of knowledge of the ephemeral exponent (bound to
    ``E``, the body, the context and the key) before it computes a partial, so ``C'`` — whose
    exponent nobody knows — is refused with the PROTOCOL code and nothing is released.
    """
    approver = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.DECRYPT}))

    async def work(c: Coordinator) -> bytes | dict[str, ErrorCode]:
        await c.create_key("k", suite=suite, threshold=1, policy=policy)
        victim = await c.encrypt("k", SECRET, CONTEXT)
        return await _redirect_an_approval(c, approver, victim)

    outcome = drive(cluster, work)
    assert outcome == {"node-1": ErrorCode.PROTOCOL, "node-2": ErrorCode.PROTOCOL}


@FROST_SUITES
def test_the_approved_ciphertext_still_decrypts_and_only_under_its_context(
    cluster: InProcessCluster, suite: str
) -> None:
    """Issue 9 item 1: the honest path is unchanged; the nodes now enforce the context too."""
    approver = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.DECRYPT}))

    async def work(c: Coordinator) -> ErrorCode:
        key = await c.create_key("k", suite=suite, threshold=1, policy=policy)
        ciphertext = await c.encrypt("k", SECRET, CONTEXT)

        def approve(context: bytes) -> tuple[bytes]:
            return (
                sign_approval(
                    approver,
                    key_name="k",
                    group_public_key=key.public_key,
                    operation=Operation.DECRYPT,
                    digest=decryption_digest(ciphertext, context),
                    not_after=int(time.time()) + 600,
                ).encode(),
            )

        assert await c.decrypt("k", ciphertext, CONTEXT, approvals=approve(CONTEXT)) == SECRET
        # A client that skips its own checks, approved for another context: the node refuses.
        request = DecryptPartial("k", ciphertext, os.urandom(32), b"q4", approve(b"q4"))
        with pytest.raises(RemoteError) as refused:
            await (await c.link("node-1")).request(request)
        return refused.value.error_code

    assert drive(cluster, work) is ErrorCode.PROTOCOL


def test_a_ciphertext_of_the_unversioned_format_is_refused_naming_the_format(
    cluster: InProcessCluster,
) -> None:
    """Issue 9 item 1: ciphertexts of the format before the proof are refused, by name."""

    async def work(c: Coordinator) -> tuple[str, str]:
        await c.create_key("k", threshold=1)
        ciphertext = await c.encrypt("k", SECRET, CONTEXT)
        key = await c.describe_key("k")
        parsed = Ciphertext.from_bytes(ciphertext, key.public.group)
        # format 1: the same header with no format byte and no proof
        old = parsed.header().replace(b"\x02\x01", b"\x01", 1)
        legacy = old + len(parsed.sealed).to_bytes(4, "big") + parsed.sealed
        with pytest.raises(InvalidInputError) as local:
            await c.decrypt("k", legacy, CONTEXT)
        request = DecryptPartial("k", legacy, os.urandom(32), CONTEXT)
        with pytest.raises(RemoteError) as remote:
            await (await c.link("node-1")).request(request)
        assert remote.value.error_code is ErrorCode.MALFORMED
        return str(local.value), remote.value.message

    texts = drive(cluster, work)
    assert isinstance(texts, tuple)
    for text in texts:
        assert "format 1" in text
        assert "format 2" in text


@FROST_SUITES
def test_whatever_encrypt_accepts_decrypt_accepts(cluster: InProcessCluster, suite: str) -> None:
    """Issue 9 item 11: the largest plaintext encryption accepts decrypts; one byte more is
    refused at encryption, naming the limit; its ciphertext fits one wire field."""
    biggest = os.urandom(MAX_PLAINTEXT)

    async def work(c: Coordinator) -> None:
        await c.create_key("k", suite=suite, threshold=1)
        ciphertext = await c.encrypt("k", biggest, CONTEXT)
        assert await c.decrypt("k", ciphertext, CONTEXT) == biggest
        assert len(ciphertext) <= MAX_BLOB
        with pytest.raises(InvalidInputError, match=f"longer than {MAX_PLAINTEXT} bytes"):
            await c.encrypt("k", biggest + b"!", CONTEXT)

    drive(cluster, work)


def test_encryption_to_a_key_that_cannot_decrypt_is_refused(cluster: InProcessCluster) -> None:
    """Issue 9 item 11: an ECDSA key never decrypts, so nothing is encrypted to it."""
    drive(cluster, lambda c: c.create_key("e", suite="ecdsa-secp256k1", threshold=1))
    with pytest.raises(InvalidInputError, match="does not decrypt"):
        drive(cluster, lambda c: c.encrypt("e", SECRET))


def test_the_attack_needs_the_exponent_of_the_crafted_point() -> None:
    """Sanity of the attack's algebra (no nodes): with the whole key, the subtraction opens C."""
    x = ED25519.scalar(1234567)
    public = ED25519.base_mul(x)
    target = encrypt(public, SECRET, OsRandom(), CONTEXT)
    r = ED25519.scalar(0x5EED)
    crafted_point = target.ephemeral + ED25519.base_mul(r)
    shared = crafted_point * x - public * r
    assert open_with_shared_point(target, public, shared, CONTEXT) == SECRET
    with pytest.raises(SecretError):
        open_with_shared_point(target, public, crafted_point * x, CONTEXT)
