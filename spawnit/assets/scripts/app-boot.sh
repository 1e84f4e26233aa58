#!/bin/bash
# Boots an application host: Ansible prepares it, then the compose stack starts with a fresh .env.
# /opt/spawnit/boot.conf (written by cloud-init) names the release and where the settings are:
# the SSM parameter SETTINGS_PARAMETER (endpoints, secret ARNs), or /opt/spawnit/app.conf as written.
# Secrets are read from Secrets Manager at boot and only ever land in .env (mode 0600).
# Runs at every boot; every step is idempotent. Output goes to /var/log/user-data.log.
set -euo pipefail
exec >>/var/log/user-data.log 2>&1
echo "== $(date -Is) app boot"

# shellcheck source=/dev/null
source /opt/spawnit/boot.conf
APP_DIR=/opt/spawnit/app
umask 077
if [ -n "$SETTINGS_PARAMETER" ]; then
  aws ssm get-parameter --region "$AWS_REGION" --name "$SETTINGS_PARAMETER" \
    --query Parameter.Value --output text >/opt/spawnit/app.conf
fi
# shellcheck source=/dev/null
source /opt/spawnit/app.conf

if ! command -v ansible-playbook >/dev/null; then
  dnf install -y ansible-core git || { dnf install -y python3-pip git && pip3 install ansible-core; }
fi
ansible-playbook /opt/spawnit/ansible/playbook.yml

secret() {  # secret-id: prints the secret string
  aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$1" --query SecretString --output text
}
field() {  # key: reads a JSON object on stdin, prints one field
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
urlencode() {
  python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}
local_secret() {  # file: a random secret generated once and kept on the host
  [ -s "$1" ] || openssl rand -hex 32 >"$1"
  cat "$1"
}

cd "$APP_DIR"
if [ -n "$DB_SECRET_ARN" ]; then
  credentials=$(secret "$DB_SECRET_ARN")
  db_user=$(field username <<<"$credentials")
  db_password=$(field password <<<"$credentials")
  DATABASE_URL="postgres://$(urlencode "$db_user"):$(urlencode "$db_password")@$DB_HOST:$DB_PORT/$DB_NAME?sslmode=require"
else
  DATABASE_URL="postgres://medusa:$(urlencode "$(local_secret .postgres-password)")@postgres:5432/medusa"
fi
if [ -n "$APP_SECRET_ARN" ]; then
  app_secrets=$(secret "$APP_SECRET_ARN")
  JWT_SECRET=$(field jwt_secret <<<"$app_secrets")
  COOKIE_SECRET=$(field cookie_secret <<<"$app_secrets")
else
  JWT_SECRET=$(local_secret .jwt-secret)
  COOKIE_SECRET=$(local_secret .cookie-secret)
fi

cat >.env.new <<ENV
BACKEND_IMAGE=$BACKEND_IMAGE
STOREFRONT_IMAGE=$STOREFRONT_IMAGE
CADDY_IMAGE=$CADDY_IMAGE
NODE_ENV=production
DATABASE_URL=$DATABASE_URL
REDIS_URL=$REDIS_URL
JWT_SECRET=$JWT_SECRET
COOKIE_SECRET=$COOKIE_SECRET
S3_BUCKET=$S3_BUCKET
S3_REGION=$S3_REGION
S3_ENDPOINT=$S3_ENDPOINT
S3_URL=$S3_URL
ENV
mv .env.new .env

compose_args=()
for file in $COMPOSE_FILES; do compose_args+=(-f "$file"); done
docker compose "${compose_args[@]}" pull --quiet
docker compose "${compose_args[@]}" up -d --remove-orphans
echo "== $(date -Is) app started"
