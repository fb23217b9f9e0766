#!/bin/sh
# Run where the service runs: `licensing` reads its configuration and database.
# Each token is printed once; keep it in your secret store.
set -eu
# Read-only: viewer, the dashboard, alerts, subscriptions.
VIEW_TOKEN=$(licensing token create --district demo --permission VIEW_LICENSE --name "dashboard (read-only)")
# Also the active-student list, settings, the audit log and Force License Update.
MANAGE_TOKEN=$(licensing token create --district demo --permission MANAGE_SETTINGS --name "roster integration")
echo "VIEW_LICENSE token:    $VIEW_TOKEN"
echo "MANAGE_SETTINGS token: $MANAGE_TOKEN"
