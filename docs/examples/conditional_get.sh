#!/bin/sh
# A query over GET carries an ETag; sent again with If-None-Match, it is answered
# 304 Not Modified (no body, 1 point) while nothing it shows has changed.
set -eu
API="${M1T1_API:-http://127.0.0.1:8000}"
QUERY='{ license { display level } alerts { kind message } }'
ETAG=$(curl -sS -o /dev/null -D - -G "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" \
  --data-urlencode "query=$QUERY" | tr -d '\r' | awk 'tolower($1) == "etag:" { print $2 }')
echo "first answer: ETag $ETAG"
curl -sS -o /dev/null -w 'second answer: HTTP %{http_code}\n' -G "$API/graphql" \
  -H "Authorization: Bearer $M1T1_TOKEN" -H "If-None-Match: $ETAG" --data-urlencode "query=$QUERY"
