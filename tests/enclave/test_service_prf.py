"""PrfEvaluate served by three in-process NodeService objects (real emulated NSMs, real sealed
stores): any two nodes' partials combine to one PRF value; encrypt mode evaluates at the hash
of the nonce, never at the input; decrypt mode obeys the key's decryption policy; keys that
cannot serve the PRF are refused with their own codes."""

from __future__ import annotations

import asyncio
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.prf import PrfPartial, combine, encryption_seed
from keyshard.client.approvals import public_key_bytes
from wire.approvals import ApprovalPolicy, Operation
from wire.errors import ErrorCode
from wire.messages import PrfEvaluate, PrfPartials

SESSION = b"s" * 32


async def _value(
    cluster: Cluster,
    public: PublicKeyPackage,
    nodes: tuple[str, str],
    request: PrfEvaluate,
    seed: bytes,
) -> bytes:
    partials = {}
    for node_id in nodes:
        reply = await cluster.services[node_id].dispatch(request)
        assert isinstance(reply, PrfPartials)
        identifier = Identifier.from_int(public.group, cluster.node_ids.index(node_id) + 1)
        partials[identifier] = PrfPartial.from_bytes(reply.partials[0], public.group)
    return combine(public, request.key_name.encode(), seed, partials, SESSION).to_bytes()


def test_nodes_serve_the_prf_and_refuse_what_they_must(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    approver = public_key_bytes(Ed25519PrivateKey.generate())
    guarded = ApprovalPolicy((approver,), 1, frozenset({Operation.DECRYPT}))

    async def run() -> None:
        public = await cluster.create_key("xks", "ed25519")
        await cluster.create_key("xks-guarded", "ed25519", guarded.encode())
        await cluster.create_key("xks-k1", "secp256k1")
        await cluster.create_key("wallet", "ecdsa-secp256k1")

        nonce = os.urandom(32)
        seed = encryption_seed(nonce)
        encrypt = PrfEvaluate("xks", SESSION, "encrypt", (nonce,))
        decrypt = PrfEvaluate("xks", SESSION, "decrypt", (seed,))
        values = {
            await _value(cluster, public, pair, request, seed)
            for pair in (("node-1", "node-2"), ("node-2", "node-3"), ("node-1", "node-3"))
            for request in (encrypt, decrypt)
        }
        assert len(values) == 1  # any t+1 nodes, either mode: one value at the hashed seed

        assert isinstance(
            await cluster.services["node-1"].dispatch(
                PrfEvaluate("xks-guarded", SESSION, "encrypt", (nonce,))
            ),
            PrfPartials,
        )
        refused = await cluster.refusal(
            "node-1", PrfEvaluate("xks-guarded", SESSION, "decrypt", (seed,))
        )
        assert refused.code is ErrorCode.QUORUM_NOT_MET
        k1 = await cluster.refusal("node-1", PrfEvaluate("xks-k1", SESSION, "encrypt", (nonce,)))
        assert k1.code is ErrorCode.UNSUPPORTED
        ecdsa = await cluster.refusal("node-1", PrfEvaluate("wallet", SESSION, "encrypt", (nonce,)))
        assert ecdsa.code is ErrorCode.WRONG_SCHEME
        unknown = await cluster.refusal(
            "node-1", PrfEvaluate("nothing", SESSION, "encrypt", (nonce,))
        )
        assert unknown.code is ErrorCode.UNKNOWN_KEY

    asyncio.run(run())
