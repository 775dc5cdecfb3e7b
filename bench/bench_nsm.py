"""Latency of the emulated NSM, PCR measurement and the KMS recipient envelope, in process.

Timed (median over the rounds, milliseconds):

* attest      — one Attestation request through ``NsmClient`` -> ``EmulatedNsm``: fresh P-384 leaf
  key and certificate, payload encoding, ES384 signature, CBOR both ways;
* attest+dev  — the same through ``DevNsm`` and a fake kernel layer (the ioctl struct packing and
  the 12 KiB response buffer), to show the driver's own overhead;
* pcr ops     — DescribePCR + ExtendPCR round trip (CBOR both ways, SHA-384);
* measure     — ``measure_image`` over this repository's transport/attestation/enclave packages;
* seal / open — ``seal_for_recipient`` / ``decrypt_for_recipient`` of a 32-byte data key with
  RSA-2048 (OAEP-SHA-256 + AES-256-CBC). Sealing is dominated by asn1crypto building the CMS
  structure in pure Python, not by the cryptography; it runs only in the emulated KMS.

Issue 2 sets no numeric goal for these (its goal is verification throughput, see
bench_attestation); the table says so. An enclave asks for a document once per boot and per
channel, so anything in the low milliseconds is far from the critical path.
Run: ``.venv/bin/python bench/bench_nsm.py [--rounds 50]``.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.emulated_ca import EmulatedCa
from attestation.measure import measure_image, pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.dev import DevNsm, NsmRaw
from attestation.nsm.emulated import EmulatedNsm
from attestation.recipient import decrypt_for_recipient, seal_for_recipient

ROOT = Path(__file__).resolve().parent.parent


class FakeKernel:
    """The nsm kernel driver's memory handling, in front of the emulated NSM."""

    def __init__(self, backend: EmulatedNsm) -> None:
        self.backend = backend

    def open(self, path: str) -> int:
        return 3

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        raw = NsmRaw.from_buffer(arg)
        response = self.backend.call(ctypes.string_at(raw.request.addr, raw.request.len))
        ctypes.memmove(raw.response.addr, response, len(response))
        raw.response.len = len(response)

    def close(self, fd: int) -> None:
        return None


def median_ms(action: Callable[[], object], rounds: int) -> float:
    action()  # warm up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds

    measured = measure_image(ROOT)
    ca = EmulatedCa.ephemeral()
    nsm = EmulatedNsm(ca, pcr_map(measured, role="bench", instance_id=ca.instance_id))
    client = NsmClient(nsm)
    via_device = NsmClient(DevNsm(device=FakeKernel(nsm)))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sealed = seal_for_recipient(b"k" * 32, key.public_key())
    public_key = b"\x04" + b"\x01" * 96

    rows = [
        ("attest", lambda: client.get_attestation_document(b"u" * 64, b"n" * 32, public_key)),
        ("attest+dev", lambda: via_device.get_attestation_document(b"u" * 64, b"n" * 32)),
        ("pcr ops", lambda: (client.describe_pcr(16), client.extend_pcr(16, b"x"))),
        ("measure", lambda: measure_image(ROOT)),
        ("seal", lambda: seal_for_recipient(b"k" * 32, key.public_key())),
        ("open", lambda: decrypt_for_recipient(sealed, key)),
    ]
    print(f"emulated NSM / measurement / recipient envelope, median of {rounds} rounds")
    print(f"{'operation':<12} {'ms':>9} {'per second':>11}  goal")
    for name, action in rows:
        ms = median_ms(action, rounds)
        print(f"{name:<12} {ms:>9.3f} {1000 / ms:>11.0f}  none set (issue 2)")


if __name__ == "__main__":
    main()
