#!/bin/sh
# The backend container's command: apply the database migrations, then serve.
# MEDUSA_MIGRATE_ON_START=false skips the migrations (run them once with `medusa db:migrate` instead).
set -eu
if [ "${MEDUSA_MIGRATE_ON_START:-true}" != false ]; then
  ./node_modules/.bin/medusa db:migrate
fi
exec ./node_modules/.bin/medusa start
