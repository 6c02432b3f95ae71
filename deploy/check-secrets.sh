#!/usr/bin/env bash
# Refuses to start the deployment while any value of its environment still holds the placeholder
# of .env.example (CHANGE_ME): an unchanged copy would run with a public JWT secret, Fernet key and
# admin password. Run by airflow-init (docker-compose.yaml) before anything else; every Airflow
# service waits for airflow-init to succeed. Prints the names of the variables, never their values.
#
#   deploy/check-secrets.sh            exit 0 when none remains, 1 naming each one that does
set -euo pipefail

placeholder="CHANGE_ME"
left=()
while IFS= read -r -d '' entry; do
  name="${entry%%=*}"
  value="${entry#*=}"
  if [[ "$value" == *"$placeholder"* ]]; then
    left+=("$name")
  fi
done < <(env -0)

if ((${#left[@]})); then
  echo "refusing to start: ${#left[@]} variable(s) still set to the ${placeholder} placeholder of .env.example:" >&2
  printf '%s\n' "${left[@]}" | sort | sed 's/^/  /' >&2
  echo "set each in .env (see the comments in .env.example), then run docker compose up again" >&2
  exit 1
fi
echo "no ${placeholder} placeholder left in the environment"
