"""``keyshard attestation inspect|verify`` — placeholder until the attestation library lands."""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups.add_parser("attestation", help="inspect and verify Nitro attestation documents")
