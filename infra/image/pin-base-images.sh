#!/usr/bin/env bash
# Resolve the tags in base-images.lock to their current digests and rewrite the lock file.
# Run on a build host with Docker (buildx); review and commit the result.
set -euo pipefail
cd "$(dirname "$0")"
command -v docker >/dev/null || { echo "pin-base-images.sh: docker is required" >&2; exit 3; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
    if [[ $line =~ ^([A-Z_]+)=([^@]+)@sha256:.*$ ]]; then
        name=${BASH_REMATCH[1]} ref=${BASH_REMATCH[2]}
        digest=$(docker buildx imagetools inspect "$ref" --format '{{json .Manifest.Digest}}' | tr -d '"')
        [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "could not resolve $ref" >&2; exit 1; }
        echo "$name=$ref@$digest" >>"$tmp"
    else
        echo "$line" >>"$tmp"
    fi
done < base-images.lock
mv "$tmp" base-images.lock
trap - EXIT
cat base-images.lock
