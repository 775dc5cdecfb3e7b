"""Keyshard's own checkov policies (loaded with ``--external-checks-dir infra/checkov``).

Each file registers one check, id ``CKV_KS_<n>``, for a mistake that would let the wrong code reach a
key. infra/ci-checks.sh fails unless every one of them runs, passes on infra/terraform, and fails on
the deliberately broken fixtures in tests/infra/fixtures/bad-terraform.
"""
