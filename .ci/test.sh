#!/usr/bin/env bash
# Run the test layers (all by default, or the ones named) from the mounted checkout and print a
# summary. Every layer runs even when an earlier one failed, so one CI run shows every failure;
# the exit code is non-zero when any layer failed.
#
# Layers: sanity units lint build pytest:<dir> for each tests/<dir> with pytest tests, molecule.
set -uo pipefail

WORK=${WORK:-$HOME/.cache/cai-ack}
# shellcheck source=/dev/null
source "$WORK/env.sh"
cd "$COLL" || exit 1

pytest_layers=()
for dir in tests/*/; do
  dir=${dir%/}
  case "$dir" in tests/unit|tests/sanity|tests/output) continue ;; esac
  if compgen -G "$dir/test_*.py" >/dev/null || compgen -G "$dir/*/test_*.py" >/dev/null; then
    pytest_layers+=("pytest:${dir#tests/}")
  fi
done

if [ "$#" -gt 0 ]; then
  layers=("$@")
else
  layers=(sanity units lint build "${pytest_layers[@]}" molecule)
fi

run_layer() {
  case "$1" in
    sanity) ansible-test sanity --venv --python 3.11 --color no ;;
    units) ansible-test units --local --python 3.11 --color no ;;
    lint) ansible-lint --offline -q ;;
    build) bash .ci/check_build.sh ;;
    pytest:*) python -m pytest -q -p no:cacheprovider --ansible-unit-inject-only "tests/${1#pytest:}" ;;
    molecule) molecule test --all ;;
    *) echo "unknown layer $1"; return 2 ;;
  esac
}

passed=0
failed=0
summary=()
for layer in "${layers[@]}"; do
  echo
  echo "==================== $layer ===================="
  start=$SECONDS
  if run_layer "$layer"; then
    passed=$((passed + 1))
    summary+=("$(printf '  %-22s ok      %5ss' "$layer" "$((SECONDS - start))")")
  else
    failed=$((failed + 1))
    summary+=("$(printf '  %-22s FAILED  %5ss' "$layer" "$((SECONDS - start))")")
  fi
done

echo
echo "==================== summary ===================="
printf '%s\n' "${summary[@]}"
echo "layers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
