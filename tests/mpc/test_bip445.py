"""BIP-445 vectors (sign_verify, tweak, nonce_gen, nonce_agg, sig_agg, det_sign) and BIP-340.

BIP-445 numbers signers 0..n-1; our identifiers are the evaluation points ``id + 1``. Expected
BIP errors map to ours: ``ValueError`` -> InvalidParameters / EncodingError,
``InvalidContributionError`` -> ProtocolAbort naming the signer (no culprit for the coordinator).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from enclave.mpc.errors import EncodingError, InvalidParameters, MpcError, ProtocolAbort
from enclave.mpc.frost.bip340 import (
    SecNonce,
    SessionContext,
    SignersContext,
    Tweak,
    TweakMode,
    deterministic_sign,
    nonce_agg,
    nonce_gen_internal,
    partial_sig_agg,
    partial_sig_verify,
    sign,
    tweak_key,
    verify_bip340,
)
from enclave.mpc.groups import SECP256K1 as G
from enclave.mpc.identifiers import Identifier

from .vectors import bip340, bip445


def ident(bip_id: int) -> Identifier:
    return Identifier.from_int(G, bip_id + 1)


def h(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


@contextlib.contextmanager
def expect(error: dict[str, Any], ids: list[int]) -> Iterator[None]:
    """Assert the BIP error ``error`` maps to our typed error (and culprit)."""
    if error["type"] == "ValueError":
        with pytest.raises((InvalidParameters, EncodingError)):
            yield
        return
    assert error["type"] == "InvalidContributionError"
    with pytest.raises(ProtocolAbort) as info:
        yield
    index = error["signer_index"]
    expected = frozenset() if index is None else frozenset({ident(ids[index])})
    assert info.value.culprits == expected


def signers_ctx(group: dict[str, Any], case: dict[str, Any]) -> SignersContext:
    return SignersContext.decode(
        group["n"],
        group["t"],
        case["ids"],
        [bytes.fromhex(group["pubshares"][i]) for i in case["pubshare_indices"]],
        bytes.fromhex(group["thresh_pk"]),
    )


def tweaks(group: dict[str, Any], case: dict[str, Any]) -> tuple[Tweak, ...]:
    if "tweak_indices" in case:
        values = [group["tweaks"][i] for i in case["tweak_indices"]]
    else:  # det_sign vectors list the tweaks inline
        values = case.get("tweaks", [])
    modes = case.get("is_xonly", [])
    if len(values) != len(modes):
        raise InvalidParameters("the tweaks and is_xonly arrays must have the same length")
    return tuple(
        Tweak(bytes.fromhex(v), TweakMode.XONLY if x else TweakMode.PLAIN)
        for v, x in zip(values, modes, strict=True)
    )


def run_sign(group: dict[str, Any], case: dict[str, Any]) -> bytes:
    ctx = SessionContext(
        bytes.fromhex(case["aggnonce"]), signers_ctx(group, case), tweaks(group, case),
        bytes.fromhex(case["msg"]),
    )  # fmt: skip
    secnonce = SecNonce.from_bytes(bytes.fromhex(group["secnonces"][case["secnonce_index"]]))
    secshare = G.decode_scalar(bytes.fromhex(group["secshares"][case["secshare_index"]]))
    return sign(secnonce, secshare, ident(case["my_id"]), ctx)


def pubnonces(group: dict[str, Any], case: dict[str, Any]) -> dict[Identifier, bytes]:
    return {
        ident(i): bytes.fromhex(group["pubnonces"][k])
        for i, k in zip(case["ids"], case["pubnonce_indices"], strict=True)
    }


def groups(name: str) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    out: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    for g in bip445(name)["test_groups"]:
        for kind, cases in g.items():
            if kind.endswith("tests"):
                out.extend((g, c, kind) for c in cases)
    return out


def case_id(item: tuple[dict[str, Any], dict[str, Any], str]) -> str:
    return f"{item[0]['tg_id']}-{item[2]}-{item[1]['tc_id']}"


@pytest.mark.parametrize("item", groups("sign_verify") + groups("tweak"), ids=case_id)
def test_sign_verify_and_tweak_vectors(item: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    group, case, kind = item
    if kind == "valid_tests":
        psig = run_sign(group, case)
        assert psig.hex().upper() == case["expected"]
        nonces = pubnonces(group, case)
        assert nonce_agg(nonces).hex().upper() == case["aggnonce"]
        signers = signers_ctx(group, case)
        assert partial_sig_verify(
            psig, nonces, signers, tweaks=tweaks(group, case), msg=bytes.fromhex(case["msg"]),
            signer=ident(case["my_id"]),
        )  # fmt: skip
    elif kind in ("sign_error_tests", "error_tests"):
        with expect(case["error"], case["ids"]):
            run_sign(group, case)
    elif kind == "verify_fail_tests":
        signer = ident(case["ids"][case["signer_index"]])
        assert not partial_sig_verify(
            bytes.fromhex(case["psig"]), pubnonces(group, case), signers_ctx(group, case),
            tweaks=(), msg=bytes.fromhex(case["msg"]), signer=signer,
        )  # fmt: skip
    else:
        assert kind == "verify_error_tests"
        with expect(case["error"], case["ids"]):
            partial_sig_verify(
                bytes.fromhex(case["psig"]), pubnonces(group, case), signers_ctx(group, case),
                tweaks=(), msg=bytes.fromhex(case["msg"]),
                signer=ident(case["ids"][case["signer_index"]]),
            )  # fmt: skip


@pytest.mark.parametrize("item", groups("sig_agg"), ids=case_id)
def test_sig_agg_vectors(item: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    group, case, kind = item
    psigs = {ident(i): bytes.fromhex(p) for i, p in zip(case["ids"], case["psigs"], strict=False)}

    def agg() -> bytes:
        if len(case["psigs"]) != len(case["ids"]):
            raise InvalidParameters("the psigs and ids arrays must have the same length")
        ctx = SessionContext(
            bytes.fromhex(case["aggnonce"]), signers_ctx(group, case), tweaks(group, case),
            bytes.fromhex(case["msg"]),
        )  # fmt: skip
        return partial_sig_agg(psigs, ctx)

    if kind == "valid_tests":
        sig = agg()
        assert sig.hex().upper() == case["expected"]
        key = tweak_key(G.decode_point(bytes.fromhex(group["thresh_pk"])), tweaks(group, case))
        assert verify_bip340(key.xonly_key, bytes.fromhex(case["msg"]), sig)
    else:
        with expect(case["error"], case["ids"]):
            agg()


@pytest.mark.parametrize("case", bip445("nonce_gen")["valid_tests"], ids=lambda c: str(c["tc_id"]))
def test_nonce_gen_vectors(case: dict[str, Any]) -> None:
    secshare = h(case["secshare"])
    pubshare = h(case["pubshare"])
    secnonce = nonce_gen_internal(
        bytes.fromhex(case["rand_"]),
        None if secshare is None else G.decode_scalar(secshare),
        None if pubshare is None else G.decode_point(pubshare),
        thresh_pk=h(case["thresh_pk"]), msg=h(case["msg"]), extra_in=h(case["extra_in"]),
    )  # fmt: skip
    assert secnonce.to_bytes().hex().upper() == case["expected"][0]
    assert secnonce.pubnonce.hex().upper() == case["expected"][1]


def test_nonce_agg_vectors() -> None:
    data = bip445("nonce_agg")
    pn = [bytes.fromhex(p) for p in data["pubnonces"]]
    for case in data["valid_tests"]:
        nonces = {ident(k): pn[i] for k, i in enumerate(case["pubnonce_indices"])}
        assert nonce_agg(nonces).hex().upper() == case["expected"]
    for case in data["error_tests"]:
        nonces = {ident(k): pn[i] for k, i in enumerate(case["pubnonce_indices"])}
        with expect(case["error"], list(range(len(nonces)))):
            nonce_agg(nonces)


@pytest.mark.parametrize("item", groups("det_sign"), ids=case_id)
def test_det_sign_vectors(item: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    group, case, kind = item

    def run() -> tuple[bytes, bytes]:
        return deterministic_sign(
            G.decode_scalar(bytes.fromhex(group["secshares"][case["secshare_index"]])),
            ident(case["my_id"]),
            h(case["aggothernonce"]),
            signers=signers_ctx(group, case),
            tweaks=tweaks(group, case),
            msg=bytes.fromhex(case["msg"]),
            rand=h(case["rand"]),
        )

    if kind == "valid_tests":
        pubnonce, psig = run()
        assert [pubnonce.hex().upper(), psig.hex().upper()] == case["expected"]
    else:
        with expect(case["error"], case["ids"]):
            run()


def test_secnonce_is_single_use_and_redacted() -> None:
    group, _case, _ = groups("sign_verify")[0]
    secnonce = SecNonce.from_bytes(bytes.fromhex(group["secnonces"][0]))
    assert "redacted" in repr(secnonce)
    secnonce.consume()
    with pytest.raises(MpcError, match="already used"):
        secnonce.consume()


@pytest.mark.parametrize("v", bip340(), ids=lambda v: str(v.index))
def test_bip340_verifier_agrees_with_the_reference(v: Any) -> None:
    assert verify_bip340(v.public_key, v.message, v.signature) is v.result
