#!/bin/sh
# Automatic persisted queries: send the document's SHA-256 first; on PERSISTED_QUERY_NOT_FOUND
# send it again with the document, which registers it for the district. (On macOS use
# `shasum -a 256` for `sha256sum`.)
set -eu
API="${M1T1_API:-http://127.0.0.1:8000}"
QUERY='{ license { display } usage { activeStudents } }'
HASH=$(printf '%s' "$QUERY" | sha256sum | cut -d' ' -f1)
EXT="{\"persistedQuery\":{\"version\":1,\"sha256Hash\":\"$HASH\"}}"
ANSWER=$(curl -sS -G "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" --data-urlencode "extensions=$EXT")
echo "hash alone: $ANSWER"
case "$ANSWER" in
  *PERSISTED_QUERY_NOT_FOUND*)
    ANSWER=$(curl -sS -G "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" \
      --data-urlencode "extensions=$EXT" --data-urlencode "query=$QUERY")
    echo "registered: $ANSWER"
    ;;
esac
echo "hash again: $(curl -sS -G "$API/graphql" -H "Authorization: Bearer $M1T1_TOKEN" --data-urlencode "extensions=$EXT")"
