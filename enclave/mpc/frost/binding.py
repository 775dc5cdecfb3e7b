"""RFC 9591 §4.3-§4.6: the values every signer and the coordinator derive from the package.

Binding factors ``rho_i = H1(SerializeElement(PK) || H4(msg) || H5(commitment list) ||
SerializeScalar(i))`` tie each signer's binding nonce to the whole commitment set and message,
which is what makes FROST secure against concurrent (ROS / Drijvers) attacks. The group
commitment is ``R = sum_i D_i + rho_i * E_i``.
"""

from __future__ import annotations

from collections.abc import Mapping

from enclave.mpc.frost.ciphersuite import Ciphersuite
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.groups import Point, Scalar
from enclave.mpc.identifiers import Identifier

__all__ = [
    "binding_factor_inputs",
    "compute_binding_factors",
    "compute_group_commitment",
    "encode_group_commitment_list",
]


def encode_group_commitment_list(commitments: Mapping[Identifier, SigningCommitments]) -> bytes:
    """§4.3: ``SerializeScalar(i) || SerializeElement(D_i) || SerializeElement(E_i)``, sorted."""
    return b"".join(
        i.to_bytes() + commitments[i].hiding.to_bytes() + commitments[i].binding.to_bytes()
        for i in sorted(commitments)
    )


def binding_factor_inputs(
    suite: Ciphersuite,
    group_public_key: Point,
    commitments: Mapping[Identifier, SigningCommitments],
    message: bytes,
) -> dict[Identifier, bytes]:
    """§4.4 ``rho_input`` per signer (exposed so tests can check it against the vectors)."""
    prefix = (
        group_public_key.to_bytes()
        + suite.h4(message)
        + suite.h5(encode_group_commitment_list(commitments))
    )
    return {i: prefix + i.to_bytes() for i in sorted(commitments)}


def compute_binding_factors(
    suite: Ciphersuite,
    group_public_key: Point,
    commitments: Mapping[Identifier, SigningCommitments],
    message: bytes,
) -> dict[Identifier, Scalar]:
    """§4.4 compute_binding_factors."""
    inputs = binding_factor_inputs(suite, group_public_key, commitments, message)
    return {i: suite.h1(data) for i, data in inputs.items()}


def compute_group_commitment(
    suite: Ciphersuite,
    commitments: Mapping[Identifier, SigningCommitments],
    binding_factors: Mapping[Identifier, Scalar],
) -> Point:
    """§4.5 compute_group_commitment: ``R = sum D_i + rho_i * E_i``."""
    g = suite.group
    acc = g.multi_mul([(binding_factors[i], commitments[i].binding) for i in sorted(commitments)])
    for i in sorted(commitments):
        acc = acc + commitments[i].hiding  # an addition, not a multiplication by one
    return acc
