"""BIP-340 signing over the network (suite ``bip340``, BIP-445), the real Coordinator against
real in-process nodes. Every signature is checked by libsecp256k1 (coincurve's
``PublicKeyXOnly.verify``) under a key computed here independently of the MPC core: the x-only
key itself, or its BIP-341 Taproot output key (coincurve's x-only ``tweak_add``)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.bip340 import PLAIN, encode_tweak, taproot_tweak
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import InvalidInputError, ProtocolError, RemoteError
from wire.approvals import ApprovalPolicy, Operation, message_digest
from wire.errors import ErrorCode
from wire.messages import Bip340Sign, NonceCommit, Reply, Request, SignatureShares


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


def _tagged(tag: str, data: bytes) -> bytes:
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()


def _taproot_output(internal: bytes, root: bytes = b"") -> coincurve.PublicKeyXOnly:
    """BIP-341's output key, by libsecp256k1 (not by the code under test)."""
    key = coincurve.PublicKeyXOnly(internal)
    key.tweak_add(_tagged("TapTweak", internal + root))  # in place
    return key


def test_a_bip340_key_signs_plain_and_taproot(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("btc", suite="bip340", threshold=1)
        internal = key.public_key[1:]  # x-only
        message = hashlib.sha256(b"spend").digest()
        signature = await c.sign_bip340("btc", message)
        assert len(signature) == 64
        assert coincurve.PublicKeyXOnly(internal).verify(signature, message)
        for signers in (["node-1", "node-2"], ["node-2", "node-3"], ["node-1", "node-3"]):
            signed = await c.sign_bip340("btc", message, signers=signers)
            assert coincurve.PublicKeyXOnly(internal).verify(signed, message)
        taproot = await c.sign_bip340("btc", message, tweaks=[taproot_tweak(internal)])
        output = _taproot_output(internal)
        assert output.verify(taproot, message)
        assert not coincurve.PublicKeyXOnly(internal).verify(taproot, message)
        root = bytes(range(32))
        scripted = await c.sign_bip340("btc", message, tweaks=[taproot_tweak(internal, root)])
        assert _taproot_output(internal, root).verify(scripted, message)
        # BIP-340 signs any message length (BIP-340's own vectors include 0 and 100 bytes)
        for other in (b"", b"x" * 100):
            assert coincurve.PublicKeyXOnly(internal).verify(
                await c.sign_bip340("btc", other), other
            )

    drive(cluster, work)


def test_a_plain_tweak_signs_for_the_bip32_style_child(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("btc", suite="bip340", threshold=1)
        tweak = hashlib.sha256(b"child").digest()
        signature = await c.sign_bip340("btc", b"m", tweaks=[encode_tweak(PLAIN, tweak)])
        child = coincurve.PublicKey(key.public_key).add(tweak)
        assert coincurve.PublicKeyXOnly(child.format()[1:]).verify(signature, b"m")

    drive(cluster, work)


def test_a_bip340_key_survives_refresh_and_refuses_other_schemes(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("btc", suite="bip340", threshold=1)
        await c.sign_bip340("btc", b"before")  # nonces cached for the old epoch
        await c.refresh_key("btc")
        signature = await c.sign_bip340("btc", b"after")
        assert coincurve.PublicKeyXOnly(key.public_key[1:]).verify(signature, b"after")
        with pytest.raises(InvalidInputError, match="BIP-340"):
            await c.sign("btc", b"m")
        node = cluster.services["node-1"]  # and the node refuses FROST of it by itself
        refused = await node.answer(NonceCommit("btc", 1))
        assert refused.code is ErrorCode.WRONG_SCHEME  # type: ignore[attr-defined]
        with pytest.raises(InvalidInputError):
            await c.encrypt("btc", b"m")
        await c.create_key("ed", threshold=1)
        with pytest.raises(InvalidInputError):
            await c.sign_bip340("ed", b"m")
        with pytest.raises(InvalidInputError):
            await c.sign_bip340("btc", b"m", tweaks=[b"\x07" + bytes(32)])

    drive(cluster, work)


def test_a_wrong_partial_signature_is_named(cluster: InProcessCluster) -> None:
    def bad(request: Request, reply: Reply) -> Reply:
        if isinstance(request, Bip340Sign) and isinstance(reply, SignatureShares):
            return SignatureShares(tuple(bytes(31) + b"\x01" for _ in reply.shares))
        return reply

    cluster.tamper["node-2"] = bad

    async def work(c: Coordinator) -> None:
        await c.create_key("btc", suite="bip340", threshold=1)
        with pytest.raises(ProtocolError) as caught:
            await c.sign_bip340("btc", b"m", signers=["node-1", "node-2"])
        assert caught.value.culprit == "node-2"

    drive(cluster, work)


def test_a_nonce_signs_once_and_approvals_name_the_output_key(cluster: InProcessCluster) -> None:
    alice = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(alice),), 1, frozenset({Operation.SIGN}))

    async def work(c: Coordinator) -> None:
        key = await c.create_key("btc", suite="bip340", threshold=1, policy=policy)
        internal = key.public_key[1:]
        tweak = taproot_tweak(internal)
        output = _taproot_output(internal).format()

        def approval(public: bytes) -> bytes:
            return sign_approval(
                alice,
                key_name="btc",
                group_public_key=public,
                operation=Operation.SIGN,
                digest=message_digest(b"m"),
                not_after=int(time.time()) + 600,
            ).encode()

        with pytest.raises(RemoteError) as caught:  # an approval of the internal key
            await c.sign_bip340("btc", b"m", tweaks=[tweak], approvals=[approval(internal)])
        assert caught.value.error_code is ErrorCode.APPROVAL_MISMATCH
        signature = await c.sign_bip340("btc", b"m", tweaks=[tweak], approvals=[approval(output)])
        assert _taproot_output(internal).verify(signature, b"m")
        # a public nonce replayed to a node: refused, whatever the rest of the request
        node = cluster.services["node-1"]
        nonces = node._bip340_nonces
        [pubnonce] = nonces.preprocess("btc", (await node._keys.stored("btc")).share, 1, node._rng)
        nonces.take("btc", pubnonce)
        other = bytes(66)
        replay = Bip340Sign("btc", (1, 2), (b"m",), ((pubnonce, other),), ((approval(output),),))
        refused = await node.answer(replay)
        assert refused.code is ErrorCode.NONCE_UNKNOWN  # type: ignore[attr-defined]

    drive(cluster, work)
