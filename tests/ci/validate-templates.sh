#!/usr/bin/env bash
# Check the CI templates against GitLab's CI schema (check-jsonschema's vendor.gitlab-ci):
# the classic template and the examples as they are, the component's `spec:` header, the
# pipeline gitlab-ci-local expands from the component, and the project's own (release) pipeline
# as written and expanded (a `spec:` header makes the component two
# YAML documents, which the schema check refuses).
# Tools: HIE_CHECK_JSONSCHEMA (default check-jsonschema on PATH), HIE_GITLAB_CI_LOCAL (default
# tests/ci/node_modules/.bin/gitlab-ci-local); rsync and git on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check=${HIE_CHECK_JSONSCHEMA:-check-jsonschema}
glcl=${HIE_GITLAB_CI_LOCAL:-$root/tests/ci/node_modules/.bin/gitlab-ci-local}
schema=(--builtin-schema vendor.gitlab-ci --data-transform gitlab-ci)

echo "== classic template and examples"
"$check" "${schema[@]}" "$root/ci-templates/hie-notify.gitlab-ci.yml" "$root"/ci-templates/examples/*.yml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== component spec header"
awk '/^---$/ {exit} {print}' "$root/templates/hie-notify.yml" > "$work/spec.yml"
"$check" "${schema[@]}" "$work/spec.yml"

echo "== component, expanded by gitlab-ci-local --preview"
repo="$work/deploy"
mkdir -p "$repo/templates"
cp "$root/templates/hie-notify.yml" "$repo/templates/"
cat > "$repo/.gitlab-ci.yml" <<'YAML'
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/hie-notify@$CI_COMMIT_SHA
    inputs:
      plan_json: plan.json
      change: deploy/change.yaml
      environment: eoe-prod
stages: [plan, gate, apply, complete]
plan:
  stage: plan
  script: [terraform show -json tfplan > plan.json]
  artifacts: {paths: [plan.json]}
apply:
  stage: apply
  rules: [{if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH}]
  script: [terraform apply tfplan]
YAML
(
  cd "$repo"
  git init -q -b main
  git remote add origin https://gitlab.example.com/acme/deploy.git
  git add -A
  git -c user.name=ci -c user.email=ci@example.org -c commit.gpgsign=false commit -q -m component
  git update-ref refs/remotes/origin/main HEAD
  git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main
  "$glcl" --preview --no-color > "$work/expanded.yml"
)
grep -q '^hie-notify:gate:' "$work/expanded.yml"
"$check" "${schema[@]}" "$work/expanded.yml"

echo "== the project's own pipeline (release jobs included), as written and expanded"
"$check" "${schema[@]}" "$root/.gitlab-ci.yml"
own="$work/own"
mkdir -p "$own"
cp "$root/.gitlab-ci.yml" "$own/"
(
  cd "$own"
  git init -q -b main
  git remote add origin https://gitlab.example.com/platform/hie-notify.git
  git add -A
  git -c user.name=ci -c user.email=ci@example.org -c commit.gpgsign=false commit -q -m own
  git update-ref refs/remotes/origin/main HEAD
  git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main
  "$glcl" --preview --no-color > "$work/own-expanded.yml"
)
grep -q '^publish-image:' "$work/own-expanded.yml"
"$check" "${schema[@]}" "$work/own-expanded.yml"
