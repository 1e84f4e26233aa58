#!/bin/sh
# The backend container's command: apply the database migrations, one host at a time (migrate.js
# holds a PostgreSQL advisory lock), then serve.
# MEDUSA_MIGRATE_ON_START=false skips the migrations (run them once with `medusa db:migrate` instead).
set -eu
if [ "${MEDUSA_MIGRATE_ON_START:-true}" != false ]; then
  node ./migrate.js
fi
exec ./node_modules/.bin/medusa start
