"""enclave.mpc.dleq against RFC 9497's published DLEQ proofs.

RFC 9497 (OPRFs) ships DLEQ proofs for ristretto255, decaf448, P-256, P-384 and P-521 — none of
Keyshard's groups. The proof algebra in ``enclave.mpc.dleq`` is written against the abstract
``Group``, so these tests plug in test-only groups — P-256/P-384/P-521 with python-ecdsa's
point arithmetic, ristretto255 through the system libsodium via ctypes (PyNaCl binds none of
its ristretto255 functions) — and the RFC's own challenge and composite hashing (RFC 9497
§2.2.1, hash-to-scalar per RFC 9380 §5 with expand_message_xmd). The very same
``generate_proof`` / ``check_proof`` / ``composite_statement`` then must:

* reproduce every proof of modes 1 (VOPRF) and 2 (POPRF), batch 1 and 2, from the vector's
  nonce ``r`` byte for byte, and
* accept each published proof, and refuse it with any single bit flipped.

decaf448 is not exercised: nothing vetted in the environment offers its arithmetic. Mode 0
(OPRF) has no proof. If the system libsodium lacks ristretto255 its 6 cases drop out and
``test_ristretto255_vectors_are_included`` is skipped, saying why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import ecdsa  # type: ignore[import-untyped]
import pytest
from ecdsa.ellipticcurve import PointJacobi  # type: ignore[import-untyped]

from enclave.mpc.dleq import (
    DleqProof,
    DleqStatement,
    check_proof,
    composite_statement,
    generate_proof,
)
from enclave.mpc.errors import EncodingError, InvalidProof
from enclave.mpc.groups import Group, Point, Scalar

VECTORS = (
    Path(__file__).parent.parent / "data" / "vectors" / "dleq-rfc9497" / "rfc9497-allVectors.json"
)


class _NistGroup(Group):
    """A NIST prime curve for tests only: python-ecdsa arithmetic, SEC1 compressed points.

    Not constant time and not for production; it exists so the RFC 9497 vectors can drive the
    generic DLEQ code. The identity is ``_impl is None`` with an all-zero encoding.
    """

    def __init__(self, name: str, curve: ecdsa.curves.Curve) -> None:
        self.name = name
        self._curve = curve
        self.order = int(curve.order)
        self.scalar_length = int(curve.baselen)
        self.element_length = 1 + (int(curve.curve.p()).bit_length() + 7) // 8
        self._identity_bytes = bytes(self.element_length)
        self._identity = Point(self, self._identity_bytes, None)
        self._generator = self._wrap(curve.generator)

    def _wrap(self, p: Any) -> Point:
        if p == ecdsa.ellipticcurve.INFINITY:
            return self._identity
        return Point(self, bytes(p.to_bytes("compressed")), p)

    def _s_to_int(self, a: bytes) -> int:
        return int.from_bytes(a, "big")

    def _s_from_int(self, value: int) -> bytes:
        return value.to_bytes(self.scalar_length, "big")

    def _s_add(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) + self._s_to_int(b)) % self.order)

    def _s_sub(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) - self._s_to_int(b)) % self.order)

    def _s_mul(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) * self._s_to_int(b)) % self.order)

    def _s_neg(self, a: bytes) -> bytes:
        return self._s_from_int(-self._s_to_int(a) % self.order)

    def _s_inv(self, a: bytes) -> bytes:
        return self._s_from_int(pow(self._s_to_int(a), -1, self.order))

    def _s_reduce_wide(self, data: bytes) -> bytes:
        return self._s_from_int(int.from_bytes(data, "big") % self.order)

    def decode_point(self, data: bytes) -> Point:
        if len(data) != self.element_length or data[0] not in (2, 3):
            raise EncodingError("point", "expected a compressed SEC1 point")
        try:
            p = PointJacobi.from_bytes(self._curve.curve, data)
        except ecdsa.errors.MalformedPointError:
            raise EncodingError("point", "not on the curve") from None
        return self._wrap(p)

    def generator(self) -> Point:
        return self._generator

    def identity(self) -> Point:
        return self._identity

    def base_mul(self, k: Scalar) -> Point:
        return self._p_mul(self._generator, k)

    def _p_add(self, a: Point, b: Point) -> Point:
        if a._impl is None:
            return b
        if b._impl is None:
            return a
        return self._wrap(cast(Any, a._impl) + b._impl)

    def _p_neg(self, a: Point) -> Point:
        if a._impl is None:
            return a
        return self._wrap(-cast(Any, a._impl))

    def _p_mul(self, p: Point, k: Scalar) -> Point:
        if p._impl is None or k.is_zero():
            return self._identity
        return self._wrap(cast(Any, p._impl) * int(k))


def _load_libsodium() -> ctypes.CDLL | None:
    """The system libsodium (>= 1.0.18 has ristretto255), which PyNaCl does not bind."""
    name = ctypes.util.find_library("sodium")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    if not hasattr(lib, "crypto_scalarmult_ristretto255") or lib.sodium_init() < 0:
        return None
    return lib


_SODIUM = _load_libsodium()
_RISTRETTO_L = 2**252 + 27742317777372353535851937790883648493


class _RistrettoGroup(Group):
    """ristretto255 for tests only, through the system libsodium via ctypes.

    PyNaCl exposes no ``crypto_core_ristretto255_*`` function, so this group exists only to run
    RFC 9497's ristretto255 vectors through the generic DLEQ code. Scalars are 32 bytes
    little-endian; the identity is the all-zero encoding (libsodium's multiplication refuses to
    output it, so it is handled here).
    """

    name = "ristretto255"
    order = _RISTRETTO_L
    scalar_length = 32
    element_length = 32
    _identity_bytes = bytes(32)

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._identity = Point(self, self._identity_bytes, None)
        out = ctypes.create_string_buffer(32)
        if lib.crypto_scalarmult_ristretto255_base(out, self._s_from_int(1)) != 0:
            raise RuntimeError("libsodium ristretto255 base multiplication failed")
        self._generator = Point(self, out.raw, None)

    def _s_to_int(self, a: bytes) -> int:
        return int.from_bytes(a, "little")

    def _s_from_int(self, value: int) -> bytes:
        return value.to_bytes(32, "little")

    def _s_add(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) + self._s_to_int(b)) % self.order)

    def _s_sub(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) - self._s_to_int(b)) % self.order)

    def _s_mul(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) * self._s_to_int(b)) % self.order)

    def _s_neg(self, a: bytes) -> bytes:
        return self._s_from_int(-self._s_to_int(a) % self.order)

    def _s_inv(self, a: bytes) -> bytes:
        return self._s_from_int(pow(self._s_to_int(a), -1, self.order))

    def _s_reduce_wide(self, data: bytes) -> bytes:
        return self._s_from_int(int.from_bytes(data, "little") % self.order)

    def decode_point(self, data: bytes) -> Point:
        if len(data) != 32 or data == self._identity_bytes:
            raise EncodingError("point", "expected a non-identity 32-byte ristretto255 element")
        if self._lib.crypto_core_ristretto255_is_valid_point(bytes(data)) != 1:
            raise EncodingError("point", "not a canonical ristretto255 encoding")
        return Point(self, bytes(data), None)

    def generator(self) -> Point:
        return self._generator

    def identity(self) -> Point:
        return self._identity

    def base_mul(self, k: Scalar) -> Point:
        return self._p_mul(self._generator, k)

    def _p_add(self, a: Point, b: Point) -> Point:
        if a.is_identity():
            return b
        if b.is_identity():
            return a
        out = ctypes.create_string_buffer(32)
        self._lib.crypto_core_ristretto255_add(out, a.to_bytes(), b.to_bytes())
        return Point(self, out.raw, None)

    def _p_neg(self, a: Point) -> Point:
        if a.is_identity():
            return a
        out = ctypes.create_string_buffer(32)
        self._lib.crypto_core_ristretto255_sub(out, self._identity_bytes, a.to_bytes())
        return Point(self, out.raw, None)

    def _p_mul(self, p: Point, k: Scalar) -> Point:
        if p.is_identity() or k.is_zero():
            return self._identity
        out = ctypes.create_string_buffer(32)
        if self._lib.crypto_scalarmult_ristretto255(out, k.to_bytes(), p.to_bytes()) != 0:
            return self._identity  # libsodium refuses an identity result
        return Point(self, out.raw, None)


@dataclass(frozen=True)
class _Suite:
    """An RFC 9497 suite: its group, hash and hash-to-scalar parameters (RFC 9497 §4)."""

    group: Group
    hash_name: str
    block_size: int  # expand_message_xmd's s_in_bytes
    field_length: int  # hash_to_field's L
    byte_order: Literal["big", "little"] = "big"  # how HashToScalar reads the uniform bytes


SUITES = {
    "P256-SHA256": _Suite(_NistGroup("P-256", ecdsa.NIST256p), "sha256", 64, 48),
    "P384-SHA384": _Suite(_NistGroup("P-384", ecdsa.NIST384p), "sha384", 128, 72),
    "P521-SHA512": _Suite(_NistGroup("P-521", ecdsa.NIST521p), "sha512", 128, 98),
}
if _SODIUM is not None:
    # RFC 9497 §4.1: HashToScalar reads 64 uniform bytes little-endian, reduced mod L.
    SUITES["ristretto255-SHA512"] = _Suite(
        _RistrettoGroup(_SODIUM), "sha512", 128, 64, byte_order="little"
    )


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _lp2(data: bytes) -> bytes:
    """RFC 9497's framing: I2OSP(len(x), 2) || x."""
    return _i2osp(len(data), 2) + data


def _expand_message_xmd(suite: _Suite, msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 (test-side: only RFC 9497's hash-to-scalar needs it)."""

    def h(data: bytes) -> bytes:
        return hashlib.new(suite.hash_name, data).digest()

    b_in_bytes = hashlib.new(suite.hash_name).digest_size
    ell = -(-length // b_in_bytes)
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = h(bytes(suite.block_size) + msg + _i2osp(length, 2) + b"\x00" + dst_prime)
    blocks = [h(b0 + b"\x01" + dst_prime)]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(h(mixed + _i2osp(i, 1) + dst_prime))
    return b"".join(blocks)[:length]


class _Rfc9497:
    """RFC 9497's context string, HashToScalar, composites and challenge for one suite+mode."""

    def __init__(self, identifier: str, mode: int) -> None:
        self.suite = SUITES[identifier]
        self.group = self.suite.group
        self.context = b"OPRFV1-" + _i2osp(mode, 1) + b"-" + identifier.encode()

    def hash_to_scalar(self, msg: bytes) -> Scalar:
        uniform = _expand_message_xmd(
            self.suite, msg, b"HashToScalar-" + self.context, self.suite.field_length
        )
        return self.group.scalar(int.from_bytes(uniform, self.suite.byte_order))

    def statement(self, public: Point, cs: list[Point], ds: list[Point]) -> DleqStatement:
        """§2.2.1 ComputeComposites: the RFC's weights, our composite_statement."""
        ser_b = public.to_bytes()
        seed = hashlib.new(
            self.suite.hash_name, _lp2(ser_b) + _lp2(b"Seed-" + self.context)
        ).digest()
        weights = [
            self.hash_to_scalar(
                _lp2(seed) + _i2osp(i, 2) + _lp2(c.to_bytes()) + _lp2(d.to_bytes()) + b"Composite"
            )
            for i, (c, d) in enumerate(zip(cs, ds, strict=True))
        ]
        return composite_statement(
            self.group.generator(), public, list(zip(cs, ds, strict=True)), weights
        )

    def challenge(self, statement: DleqStatement, t2: Point, t3: Point) -> Scalar:
        """§2.2.1: c = HashToScalar(Bm, M, Z, t2, t3 framed, || "Challenge")."""
        fields = (statement.public, statement.other_base, statement.other_public, t2, t3)
        return self.hash_to_scalar(b"".join(_lp2(p.to_bytes()) for p in fields) + b"Challenge")


@dataclass(frozen=True)
class _Case:
    name: str
    rfc: _Rfc9497
    secret: Scalar
    statement: DleqStatement
    nonce: Scalar
    proof: bytes


def _points(group: Group, field: str) -> list[Point]:
    """A comma-separated list of hex-encoded elements (batched vectors)."""
    return [group.decode_point(bytes.fromhex(x)) for x in field.split(",")]


def _cases() -> list[_Case]:
    cases = []
    for entry in json.loads(VECTORS.read_text()):
        if entry["identifier"] not in SUITES or entry["mode"] == 0:
            continue
        rfc = _Rfc9497(entry["identifier"], entry["mode"])
        group = rfc.group
        sk = group.decode_scalar(bytes.fromhex(entry["skSm"]))
        pk = group.decode_point(bytes.fromhex(entry["pkSm"]))
        for index, vector in enumerate(entry["vectors"]):
            blinded = [
                group.decode_point(bytes.fromhex(x)) for x in vector["BlindedElement"].split(",")
            ]
            evaluated = [
                group.decode_point(bytes.fromhex(x)) for x in vector["EvaluationElement"].split(",")
            ]
            if entry["mode"] == 1:
                # VOPRF §3.3.2: GenerateProof(skS, G, pkS, blindedElements, evaluatedElements).
                secret, public, cs, ds = sk, pk, blinded, evaluated
            else:
                # POPRF §3.3.3: t = skS + HashToScalar(framedInfo), tweakedKey = t·G, and
                # GenerateProof(t, G, tweakedKey, evaluatedElements, blindedElements).
                info = bytes.fromhex(vector["Info"])
                secret = sk + rfc.hash_to_scalar(b"Info" + _lp2(info))
                public = group.base_mul(secret)
                cs, ds = evaluated, blinded
            cases.append(
                _Case(
                    name=f"{entry['identifier']}-mode{entry['mode']}-{index}-batch{vector['Batch']}",
                    rfc=rfc,
                    secret=secret,
                    statement=rfc.statement(public, cs, ds),
                    nonce=group.decode_scalar(bytes.fromhex(vector["Proof"]["r"])),
                    proof=bytes.fromhex(vector["Proof"]["proof"]),
                )
            )
    return cases


CASES = _cases()


def test_vectors_cover_four_suites_two_modes_and_batching() -> None:
    assert {c.name.split("-mode")[0] for c in CASES} == set(SUITES)
    assert len(CASES) == 6 * len(SUITES)
    assert any("batch2" in c.name for c in CASES)


@pytest.mark.skipif(_SODIUM is None, reason="system libsodium with ristretto255 not found")
def test_ristretto255_vectors_are_included() -> None:
    assert sum(c.name.startswith("ristretto255") for c in CASES) == 6


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_prover_reproduces_rfc9497_proof(case: _Case) -> None:
    proof = generate_proof(case.secret, case.statement, case.nonce, case.rfc.challenge)
    assert proof.to_bytes() == case.proof


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_verifier_accepts_rfc9497_proof_and_round_trips_it(case: _Case) -> None:
    proof = DleqProof.from_bytes(case.rfc.group, case.proof)
    assert proof.to_bytes() == case.proof
    check_proof(case.statement, proof, case.rfc.challenge)


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: c.name)
@pytest.mark.parametrize("bit", [0, 7, 200, -1])
def test_verifier_refuses_flipped_bit(case: _Case, bit: int) -> None:
    data = bytearray(case.proof)
    position = bit % (8 * len(data))
    data[position // 8] ^= 1 << (position % 8)
    try:
        proof = DleqProof.from_bytes(case.rfc.group, bytes(data))
    except EncodingError:
        return  # the flip pushed a scalar out of range: refused at decoding, also correct
    with pytest.raises(InvalidProof) as err:
        check_proof(case.statement, proof, case.rfc.challenge)
    assert err.value.culprits == frozenset()


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: c.name)
def test_verifier_refuses_proof_for_another_statement(case: _Case) -> None:
    group = case.rfc.group
    st = case.statement
    wrong = DleqStatement(st.base, st.public, st.other_base, st.other_public + group.generator())
    with pytest.raises(InvalidProof):
        check_proof(wrong, DleqProof.from_bytes(group, case.proof), case.rfc.challenge)
