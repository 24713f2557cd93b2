#!/usr/bin/env bash
# The same answers before and after: builds <git-ref> in a temporary worktree, runs
# scripts/same-answers.mjs against it and against this checkout (built here first), and
# compares the two sets byte for byte. Exit 0 when every answer is the same.
#   scripts/same-answers.sh 52d337e
set -euo pipefail
ref="${1:?usage: scripts/same-answers.sh <git-ref>}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'git -C "$here" worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$here" worktree add --detach "$work/before" "$ref" >/dev/null
cp -a "$here/node_modules" "$work/before/node_modules"
(cd "$work/before" && npm run -s build >/dev/null)
(cd "$here" && npm run -s build >/dev/null)
node "$here/scripts/same-answers.mjs" "$work/before" "$work/answers-before"
node "$here/scripts/same-answers.mjs" "$here" "$work/answers-after"
if diff -r "$work/answers-before" "$work/answers-after"; then
  echo "same answers: $(ls "$work/answers-after" | wc -l) CLI and API queries, byte for byte ($ref and this checkout)"
else
  echo "answers differ between $ref and this checkout (diff above)"; exit 1
fi
