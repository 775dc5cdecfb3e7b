#!/usr/bin/env bash
# Regenerate requirements-enclave.txt: the exact wheels (linux x86_64, CPython 3.11) of the enclave's
# runtime dependencies, each with its SHA-256. Usage: infra/image/lock-wheels.sh PKG==VER [PKG==VER ...]
# (the runtime dependencies of pyproject.toml and their dependencies, at the versions under test).
set -euo pipefail
[[ $# -gt 0 ]] || { sed -n 2,4p "$0"; exit 2; }
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --dest "$work" --only-binary=:all: --implementation cp \
    --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "$@"
python3 - "$work" > requirements-enclave.txt <<'PY'
import hashlib, pathlib, sys
print("# The enclave image's Python dependencies: exact versions, one wheel each (linux x86_64, CPython 3.11),")
print("# installed with --require-hashes --only-binary=:all: so the image gets byte-identical wheels on every")
print("# build. Regenerate with infra/image/lock-wheels.sh when pyproject.toml's runtime dependencies move.")
print()
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl"), key=lambda p: p.name.lower()):
    name, version = wheel.name.split("-")[:2]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    print(f"{name.replace('_', '-').lower()}=={version} \\\n    --hash=sha256:{digest}")
PY
echo "wrote $(pwd)/requirements-enclave.txt"
