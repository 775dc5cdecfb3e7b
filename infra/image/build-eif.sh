#!/usr/bin/env bash
# Build the enclave image and its EIF, and record the measurements in the release manifest.
#
#   infra/image/build-eif.sh IMAGE-CONFIG [--version V] [--sign-cert CERT.pem --sign-key KEY.pem]
#                            [--push REPOSITORY] [--out-dir DIR] [--manifest FILE]
#     IMAGE-CONFIG: the enclave's measured enclave/image.json, either
#       --image-config FILE   (written earlier by tools/image_config.py write), or written here:
#       --client-cert PEM [--client-cert PEM ...] [--max-document-age 300]
#       the cluster table: --node ID=KEY_ARN[,REGION] per node, or --nodes FILE ({"ID": "KEY_ARN"})
#       [--attestation-root PEM (default attestation/aws_nitro_root_g1.pem)]
#       [--peer-release MANIFEST.json ...]: other releases admitted as DKG/presign peers (give the
#       previous release when building the next; see infra/README.md "Rolling an upgrade")
#       ONE image (one EIF, one PCR0) serves every node in the table; each parent names its node
#       at boot (parent config node_id), and the enclave uses the table's key for it.
#       tools/image_config.py validates it with the enclave's own ImageConfig loader; it lands in
#       OUT_DIR/image.json and, for docker, in build/image/image.json (the Dockerfile copies it to
#       /opt/keyshard/app/enclave/image.json). Then docker build (pinned bases, SOURCE_DATE_EPOCH =
#       commit time), nitro-cli build-enclave,
#       then tools/release_manifest.py writes PCR0/1/2 (and PCR8 when signed), the image digest
#       (the registry digest with --push, which Confidential Space nodes pin; else the local image
#       id) and the commit into the manifest (default release/manifest.json).
#
#   infra/image/build-eif.sh --from-measurements FILE --image-digest sha256:... [--version V]
#                            [--manifest FILE]
#       only the last step: record what nitro-cli printed on another host (e.g. a CI builder).
#
# Exit codes: 0 done; 1 a step failed or the measurements were refused (all-zero, wrong size, wrong
# hash algorithm: see tools/release_manifest.py) or the image config was refused; 2 bad usage; 3 a
# required tool (nitro-cli, docker) is missing here. The manifest is written atomically and only
# after every check passed. PYTHON (default .venv/bin/python when present) must import the keyshard
# packages: tools/image_config.py uses enclave.config itself.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

NITRO_CLI=${NITRO_CLI:-nitro-cli}
DOCKER=${DOCKER:-docker}
if [[ -x .venv/bin/python ]]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
MANIFEST=release/manifest.json
OUT_DIR=build/eif
VERSION=""
FROM_MEASUREMENTS=""
IMAGE_DIGEST=""
SIGN_CERT=""
SIGN_KEY=""
PUSH=""
IMAGE_CONFIG=""
IMAGE_ARGS=()

usage() { sed -n 2,29p "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
refuse() { printf 'build-eif.sh: %s\n' "$1" >&2; exit "${2:-1}"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --version) VERSION=${2:?}; shift 2 ;;
        --manifest) MANIFEST=${2:?}; shift 2 ;;
        --out-dir) OUT_DIR=${2:?}; shift 2 ;;
        --from-measurements) FROM_MEASUREMENTS=${2:?}; shift 2 ;;
        --image-digest) IMAGE_DIGEST=${2:?}; shift 2 ;;
        --sign-cert) SIGN_CERT=${2:?}; shift 2 ;;
        --sign-key) SIGN_KEY=${2:?}; shift 2 ;;
        --push) PUSH=${2:?}; shift 2 ;;
        --image-config) IMAGE_CONFIG=${2:?}; shift 2 ;;
        --client-cert|--node|--nodes|--max-document-age|--attestation-root|--peer-release)
            IMAGE_ARGS+=("$1" "${2:?}"); shift 2 ;;
        -h|--help) usage ;;
        *) printf 'build-eif.sh: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done

if [[ -z $VERSION ]]; then
    VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
fi

record() {  # record MEASUREMENTS_FILE IMAGE_DIGEST [BUILD_ARGS...]
    local measurements=$1 digest=$2
    shift 2
    "$PY" tools/release_manifest.py from-nitro-cli --measurements "$measurements" \
        --version "$VERSION" --image-digest "$digest" --out "$MANIFEST" "$@" \
        || refuse "the measurements were refused; $MANIFEST is unchanged"
}

if [[ -n $FROM_MEASUREMENTS ]]; then
    [[ -n $IMAGE_DIGEST ]] || refuse "--from-measurements needs --image-digest" 2
    [[ -f $FROM_MEASUREMENTS ]] || refuse "no such file: $FROM_MEASUREMENTS" 2
    record "$FROM_MEASUREMENTS" "$IMAGE_DIGEST"
    exit 0
fi

# --- the full build: refuse cleanly where the tools are not -----------------------------------
command -v "$NITRO_CLI" >/dev/null 2>&1 || refuse "nitro-cli not found: build EIFs on a Nitro-capable \
build host (Amazon Linux 2023: dnf install aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel), or \
record a build made elsewhere with --from-measurements. Nothing was built; $MANIFEST is unchanged." 3
command -v "$DOCKER" >/dev/null 2>&1 || refuse "docker not found: nitro-cli builds the EIF from a \
Docker image. Nothing was built; $MANIFEST is unchanged." 3
"$DOCKER" info >/dev/null 2>&1 || refuse "the Docker daemon is not reachable. Nothing was built; \
$MANIFEST is unchanged." 3
if [[ -n $SIGN_CERT || -n $SIGN_KEY ]]; then
    [[ -f $SIGN_CERT && -f $SIGN_KEY ]] || refuse "--sign-cert and --sign-key must both name files" 2
fi

# --- enclave/image.json: the trust anchors and cluster table measured into PCR0 -----------------
mkdir -p "$OUT_DIR"
if [[ -n $IMAGE_CONFIG && ${#IMAGE_ARGS[@]} -gt 0 ]]; then
    refuse "give either --image-config or the values to write one, not both" 2
elif [[ -n $IMAGE_CONFIG ]]; then
    [[ -f $IMAGE_CONFIG ]] || refuse "no such file: $IMAGE_CONFIG" 2
    "$PY" tools/image_config.py check "$IMAGE_CONFIG" || refuse "the image config was refused; nothing was built"
    cp "$IMAGE_CONFIG" "$OUT_DIR/image.json"
elif [[ ${#IMAGE_ARGS[@]} -gt 0 ]]; then
    [[ " ${IMAGE_ARGS[*]} " == *" --attestation-root "* ]] \
        || IMAGE_ARGS+=(--attestation-root attestation/aws_nitro_root_g1.pem)
    "$PY" tools/image_config.py write --out "$OUT_DIR/image.json" "${IMAGE_ARGS[@]}" \
        || refuse "the image config was refused; nothing was built"
else
    refuse "the enclave image needs enclave/image.json: give --image-config FILE or \
--client-cert and the cluster table (--node ID=KEY_ARN per node, or --nodes FILE; see infra/README.md)" 2
fi

[[ -z $(git status --porcelain --untracked-files=no) ]] || refuse "the work tree has uncommitted changes: a \
release is built from a commit, so that anyone can rebuild it and compare PCRs"
COMMIT=$(git rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$COMMIT")
export SOURCE_DATE_EPOCH

# shellcheck source=/dev/null
source <(grep -E '^[A-Z_]+=' infra/image/base-images.lock)
for image in "$BUILD_IMAGE" "$RUNTIME_IMAGE"; do
    [[ $image =~ @sha256:[0-9a-f]{64}$ ]] || refuse "base image not pinned by digest: $image (run \
infra/image/pin-base-images.sh and commit base-images.lock)"
done

TAG=keyshard-enclave:$VERSION
mkdir -p build/image
cp "$OUT_DIR/image.json" build/image/image.json
echo "== docker build $TAG (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, commit $COMMIT)"
DOCKER_BUILDKIT=1 "$DOCKER" buildx build --file infra/image/Dockerfile \
    --build-arg BUILD_IMAGE="$BUILD_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" \
    --build-arg SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
    --output "type=docker,name=$TAG,rewrite-timestamp=true" --provenance=false "$ROOT"

DIGEST=$("$DOCKER" image inspect --format '{{.Id}}' "$TAG")
if [[ -n $PUSH ]]; then
    "$DOCKER" tag "$TAG" "$PUSH:$VERSION"
    "$DOCKER" push "$PUSH:$VERSION" >/dev/null
    DIGEST=$("$DOCKER" image inspect --format '{{index .RepoDigests 0}}' "$PUSH:$VERSION" | sed 's/.*@//')
fi

EIF=$OUT_DIR/keyshard-$VERSION.eif
SIGN_ARGS=()
[[ -n $SIGN_CERT ]] && SIGN_ARGS=(--signing-certificate "$SIGN_CERT" --private-key "$SIGN_KEY")
echo "== nitro-cli build-enclave -> $EIF"
"$NITRO_CLI" build-enclave --docker-uri "$TAG" --output-file "$EIF" "${SIGN_ARGS[@]}" \
    > "$OUT_DIR/measurements.json"
cat "$OUT_DIR/measurements.json"

record "$OUT_DIR/measurements.json" "$DIGEST" --git-commit "$COMMIT" --source-date-epoch "$SOURCE_DATE_EPOCH"
echo "EIF sha256: $(sha256sum "$EIF" | cut -d' ' -f1)"
echo "Next: upload $EIF to the release bucket and commit $MANIFEST (see infra/README.md)."
