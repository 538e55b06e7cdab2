# The shell the README's commands expect: `source env.sh` in the checkout (bash or zsh), once per
# shell. It puts .venv/bin on PATH (`make setup` creates it), switches every library's telemetry
# off (as the Makefile does), and keeps the state in the checkout: MLOPS_HOME=.mlops (MLflow
# store, snapshots) and PREFECT_HOME=.mlops/prefect (the Prefect server of `make server`, whose
# URL it writes into the profile there, so raw `prefect deploy` / `prefect worker start` find it).
# Variables you set before sourcing (MLOPS_HOME, PREFECT_HOME, PREFECT_API_URL) are kept.
MLOPS_CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export MLOPS_CHECKOUT
case ":$PATH:" in
  *":$MLOPS_CHECKOUT/.venv/bin:"*) ;;
  *) export PATH="$MLOPS_CHECKOUT/.venv/bin:$PATH" ;;
esac
export DO_NOT_TRACK=true
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export MLFLOW_DISABLE_TELEMETRY=true
export BENTOML_DO_NOT_TRACK=true
export GX_ANALYTICS_ENABLED=false
export MLOPS_HOME="${MLOPS_HOME:-$MLOPS_CHECKOUT/.mlops}"
export PREFECT_HOME="${PREFECT_HOME:-$MLOPS_HOME/prefect}"
if [ ! -x "$MLOPS_CHECKOUT/.venv/bin/prefect-mlops" ]; then
  echo "env.sh: no .venv yet: run \`make setup\` (or \`make demo\`) in $MLOPS_CHECKOUT" >&2
fi
