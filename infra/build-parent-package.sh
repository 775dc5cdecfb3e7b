#!/usr/bin/env bash
# Build the parent package that a node's user data installs: build/parent/keyshard-parent-<version>.tar,
# a tarball of wheels (keyshard itself and every dependency of 'keyshard[parent]'), and its SHA-256
# for terraform's parent_package.sha256 (envs/example: var.parent_package_sha256).
#
#   infra/build-parent-package.sh [--version V] [--python-version 3.11]
#
# The node installs it offline ("pip install --no-index --find-links WHEELS 'keyshard[parent]'", see
# modules/node-aws-nitro/templates/user_data.sh.tftpl), so the tarball must hold binary wheels for
# the instance's interpreter and platform (Amazon Linux 2023: CPython 3.11, x86_64), not this
# machine's: dependencies are downloaded with --only-binary for that target, whatever runs the build.
# <version> defaults to pyproject's, the same default build-eif.sh uses, so the user data's
# keyshard-parent-<manifest version>.tar names this file. Needs network access to the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VERSION=""
PYVER=3.11
# Amazon Linux 2023 has glibc 2.34: any manylinux wheel up to 2_34 runs there.
PLATFORMS=(manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
while [[ $# -gt 0 ]]; do
    case $1 in
        --version) VERSION=${2:?}; shift 2 ;;
        --python-version) PYVER=${2:?}; shift 2 ;;
        *) echo "usage: $0 [--version V] [--python-version X.Y]" >&2; exit 1 ;;
    esac
done
if [[ -z $VERSION ]]; then
    VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
fi
OUT=build/parent
WHEELS=$OUT/wheels
TAR=$OUT/keyshard-parent-$VERSION.tar
rm -rf "$WHEELS" "$TAR"
mkdir -p "$WHEELS"

# keyshard itself (pure Python: one py3-none-any wheel), then the target's binary dependencies.
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WHEELS" .
"$PY" - > "$OUT/requirements.txt" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["parent"]))
PY
"$PY" -m pip download --quiet --dest "$WHEELS" --only-binary=:all: \
    --python-version "$PYVER" --implementation cp "${PLATFORMS[@]/#/--platform=}" \
    -r "$OUT/requirements.txt"

# A stable tarball: sorted names, fixed owner and mtime, so the same wheels give the same SHA-256.
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" -C "$WHEELS" -cf "$TAR" .
sha256sum "$TAR" | tee "$TAR.sha256"
echo "upload $TAR to the release bucket; set parent_package_sha256 to the hash above" >&2
