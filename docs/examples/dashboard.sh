#!/bin/sh
# Who am I, then the dashboard, with curl. Needs VIEW_LICENSE.
set -eu
API="${M1T1_API:-http://127.0.0.1:8000}"
curl -sS "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" -H 'Content-Type: application/json' \
  -d '{"query": "{ viewer { district { slug name } token { name permissions } } }"}'
echo
curl -sS "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" -H 'Content-Type: application/json' \
  -d '{"query": "{ license { display level status expiresAt } licenseUnavailable { reason message } usage { activeStudents } alerts { kind severity message } }"}'
echo
