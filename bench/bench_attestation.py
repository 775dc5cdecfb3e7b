"""Attestation verification throughput: cold chain vs cached chain, on a genuine AWS document.

Run: ``.venv/bin/python bench/bench_attestation.py`` (``make bench`` does). Goals (issue 2): cold
verification <= 2.7 ms per document on the 2-core dev machine (a compiled Rust verifier measures
about that here), cached at least 4x faster than that goal (<= 0.675 ms).

"Cold" clears the verifier's chain caches before every document, so each run parses the five
certificates, checks four certificate signatures and the document's signature; it is measured
serially (the default) and with ``workers=2`` (the five checks spread over both cores).

The machine is shared, so each measure is taken in several rounds and reported as the median and
the best round (the best round is the least disturbed by other processes; the goal is judged on
the median). "Cached" is a
stream of documents from one enclave: the chain is verified once, then only the document's own
signature is checked. The breakdown shows where cold time goes.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation.codec import decode_document, sig_structure
from attestation.verifier import AttestationVerifier

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "attestation" / "evervault_beta_valid.bin"
COLD_GOAL_MS = 2.7
CACHED_GOAL_MS = COLD_GOAL_MS / 4


def per_call_ms(
    fn: Callable[[], object], *, rounds: int = 9, number: int = 60
) -> tuple[float, float]:
    """(median, best) over ``rounds`` of the mean wall time of ``number`` calls, in ms."""
    fn()  # warm up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1000)
    return statistics.median(samples), min(samples)


def main() -> int:
    data = SAMPLE.read_bytes()
    doc = decode_document(data)
    clock_at = doc.payload.timestamp
    verifier = AttestationVerifier(clock=lambda: clock_at)

    def cold() -> None:
        verifier.clear_cache()
        verifier.verify(data)

    def cached() -> None:
        verifier.verify(data)

    cold_ms = per_call_ms(cold)
    verifier.clear_cache()
    cached_ms = per_call_ms(cached, number=300)
    with AttestationVerifier(clock=lambda: clock_at, workers=2) as parallel:

        def cold_parallel() -> None:
            parallel.clear_cache()
            parallel.verify(data)

        cold_parallel_ms = per_call_ms(cold_parallel)
    cpu_start = time.process_time()
    for _ in range(100):
        cold()
    cold_cpu_ms = (time.process_time() - cpu_start) / 100 * 1000

    # Breakdown of one cold verification.
    ders = [doc.payload.certificate, *reversed(doc.payload.cabundle)]
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    leaf_key = certs[0].public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    r = int.from_bytes(doc.signature[:48], "big")
    s = int.from_bytes(doc.signature[48:], "big")
    der_sig = encode_dss_signature(r, s)
    to_sign = sig_structure(doc.protected, doc.payload_bytes)

    def check_links() -> None:
        for i in range(4):
            certs[i].verify_directly_issued_by(certs[i + 1])

    def parse() -> None:
        for d in ders:
            _ = x509.load_der_x509_certificate(d).extensions

    parts = [
        (
            "CBOR decode (strict, with re-encoding check)",
            per_call_ms(lambda: decode_document(data)),
        ),
        ("X.509 parse of 5 certificates + extensions", per_call_ms(parse)),
        ("4 certificate signature checks (P-384)", per_call_ms(check_links, number=20)),
        (
            "1 COSE_Sign1 ES384 check (P-384)",
            per_call_ms(lambda: leaf_key.verify(der_sig, to_sign, ec.ECDSA(hashes.SHA384()))),
        ),
    ]

    def verdict(ms: float, goal: float) -> str:
        return f"<= {goal:.3f} ms  " + ("met" if ms <= goal else "NOT MET")

    print(f"sample: {SAMPLE.name} ({len(data)} bytes), verified at its own timestamp")
    print(
        f"{'measure (wall clock, ms per document)':<46} {'median':>7} {'best':>7} {'docs/s':>7}   goal"
    )
    rows = [
        ("cold chain, serial (workers=0, the default)", cold_ms, COLD_GOAL_MS),
        ("cold chain, 2 signature workers (workers=2)", cold_parallel_ms, COLD_GOAL_MS),
        ("cached chain (stream from one enclave)", cached_ms, CACHED_GOAL_MS),
    ]
    for label, (median, best), goal in rows:
        print(
            f"{label:<46} {median:7.3f} {best:7.3f} {1000 / median:7.0f}   {verdict(median, goal)}"
        )
    print(f"{'cold chain, serial: CPU time per document':<46} {cold_cpu_ms:7.3f}")
    print(
        f"{'cached vs serial cold (medians)':<46} {cold_ms[0] / cached_ms[0]:6.1f}x"
        f"   cached goal: 4x faster than the cold goal"
    )
    print("cold breakdown (median, best):")
    for label, (median, best) in parts:
        print(f"  {label:<44} {median:7.3f} {best:7.3f}")
    print(f"  {'sum of parts':<44} {sum(m for _, (m, _b) in parts):7.3f}")
    print(
        "note: the five P-384 signature checks (OpenSSL via cryptography) are the floor of a cold"
        " verification;\n      workers=2 spreads them over both cores (cryptography releases the"
        " GIL): lower latency\n      when a core is free, same CPU time."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
