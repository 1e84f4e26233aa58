#!/bin/bash
# Boots an application host: Ansible prepares it, then the compose stack starts with a fresh .env.
# /opt/spawnit/boot.conf (written by cloud-init) names the release and where the settings are:
# the SSM parameter SETTINGS_PARAMETER (endpoints, secret ARNs), or /opt/spawnit/app.conf as written.
# Secrets are read from Secrets Manager and only ever land in .env (mode 0600).
#
#   spawnit-app.sh           at every boot: prepare the host, write .env, pull and start the stack
#   spawnit-app.sh refresh   every few minutes (systemd timer): re-read the secrets; when .env changes
#                            (RDS rotates its managed password every 7 days) rewrite it and recreate
#                            the containers, so new database connections use the new password
# Every step is idempotent; network steps are retried. Output goes to /var/log/user-data.log.
set -euo pipefail
exec >>"${SPAWNIT_LOG:-/var/log/user-data.log}" 2>&1
MODE=${1:-boot}
log() { echo "== $(date -Is) app $MODE: $*" >&2; }
log "start"

SPAWNIT_ROOT=${SPAWNIT_ROOT:-/opt/spawnit}
# shellcheck source=/dev/null
source "$SPAWNIT_ROOT/boot.conf"
APP_DIR=$SPAWNIT_ROOT/app
umask 077

retry() {  # retry ATTEMPTS COMMAND...: runs COMMAND until it succeeds, waiting longer each time
  local attempts=$1 attempt=1
  shift
  until "$@"; do
    if [ "$attempt" -ge "$attempts" ]; then
      log "failed after $attempts attempts: $*"
      return 1
    fi
    log "attempt $attempt of $attempts failed, retrying: $1"
    sleep $((attempt * ${RETRY_DELAY_SECONDS:-5}))
    attempt=$((attempt + 1))
  done
}

IMDS=${IMDS_ENDPOINT:-http://169.254.169.254}
imds() {  # imds ITEM: one item of the instance metadata (IMDSv2: a session token first)
  local token
  token=$(curl -sf --max-time 2 -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60") &&
    curl -sf --max-time 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/$1"
}

public_address() {  # the host's public DNS name, else its public IPv4 (a spot box gets new ones at each start)
  local found
  found=$(imds public-hostname 2>/dev/null) && [ -n "$found" ] && { echo "$found"; return 0; }
  found=$(imds public-ipv4 2>/dev/null) && [ -n "$found" ] && { echo "$found"; return 0; }
  return 1
}

mount_data_volume() {  # the dev box keeps its database and secrets on a volume of its own
  local device=$DATA_DEVICE
  log "waiting for the data volume $device"
  for _ in $(seq 120); do [ -b "$device" ] && break; sleep 5; done
  [ -b "$device" ] || { log "data volume $device never appeared"; return 1; }
  blkid "$device" >/dev/null || { log "formatting the new data volume"; mkfs.xfs -q "$device"; }
  mkdir -p "$DATA_DIR"
  grep -q " $DATA_DIR " /etc/fstab || echo "$device $DATA_DIR xfs defaults,nofail 0 2" >>/etc/fstab
  mountpoint -q "$DATA_DIR" || mount "$DATA_DIR"
}

if [ "$MODE" = boot ]; then
  if [ -n "${DATA_DEVICE:-}" ]; then mount_data_volume; fi
  if ! command -v ansible-playbook >/dev/null; then
    retry 5 dnf install -y ansible-core git || retry 5 pip3 install ansible-core
  fi
  retry 3 ansible-playbook "$SPAWNIT_ROOT/ansible/playbook.yml"
fi
STATE_DIR=${DATA_DIR:-$APP_DIR}
mkdir -p "$STATE_DIR"

if [ -n "$SETTINGS_PARAMETER" ]; then
  retry 5 aws ssm get-parameter --region "$AWS_REGION" --name "$SETTINGS_PARAMETER" \
    --query Parameter.Value --output text >"$SPAWNIT_ROOT/app.conf.new"
  mv "$SPAWNIT_ROOT/app.conf.new" "$SPAWNIT_ROOT/app.conf"
fi
# shellcheck source=/dev/null
source "$SPAWNIT_ROOT/app.conf"

secret() {  # secret-id: prints the secret string
  retry 5 aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$1" --query SecretString --output text
}
field() {  # key: reads a JSON object on stdin, prints one field
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
urlencode() {
  python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}
local_secret() {  # name: a random secret generated once and kept on the host (on the data volume if any)
  [ -s "$STATE_DIR/.$1" ] || openssl rand -hex 32 >"$STATE_DIR/.$1"
  cat "$STATE_DIR/.$1"
}

cd "$APP_DIR"
CA_FILE=/etc/ssl/certs/rds-ca.pem  # where the backend container sees the RDS certificate authorities
if [ -n "$DB_SECRET_ARN" ]; then
  # RDS for PostgreSQL 16 forces TLS. node-postgres treats sslmode=require as verify-full
  # (brianc/node-postgres#2375) and Node does not trust the RDS CAs: ship AWS's bundle and verify.
  if [ ! -s rds-ca.pem ] || [ "$MODE" = boot ]; then
    retry 5 curl -fsS --max-time 30 -o rds-ca.pem.new "$RDS_CA_URL"
    grep -q "BEGIN CERTIFICATE" rds-ca.pem.new || { log "$RDS_CA_URL is not a certificate bundle"; exit 1; }
    chmod 0644 rds-ca.pem.new
    mv rds-ca.pem.new rds-ca.pem
  fi
  credentials=$(secret "$DB_SECRET_ARN")
  db_user=$(field username <<<"$credentials")
  db_password=$(field password <<<"$credentials")
  DATABASE_URL="postgres://$(urlencode "$db_user"):$(urlencode "$db_password")@$DB_HOST:$DB_PORT/$DB_NAME?sslmode=verify-full"
  NODE_EXTRA_CA_CERTS=$CA_FILE
else
  [ -e rds-ca.pem ] || : >rds-ca.pem
  DATABASE_URL="postgres://medusa:$(urlencode "$(local_secret postgres-password)")@postgres:5432/medusa"
  [ "$STATE_DIR" = "$APP_DIR" ] || ln -sf "$STATE_DIR/.postgres-password" .postgres-password
  # Without a bucket the backend keeps uploads in /server/static, written by its image's user (1000):
  # they live here, beside the database, and outlive the container and the instance.
  install -d -m 0755 -o 1000 -g 1000 "$STATE_DIR/media"
  NODE_EXTRA_CA_CERTS=
fi
if [ -n "$APP_SECRET_ARN" ]; then
  app_secrets=$(secret "$APP_SECRET_ARN")
  JWT_SECRET=$(field jwt_secret <<<"$app_secrets")
  COOKIE_SECRET=$(field cookie_secret <<<"$app_secrets")
else
  JWT_SECRET=$(local_secret jwt-secret)
  COOKIE_SECRET=$(local_secret cookie-secret)
fi

S3_ACCESS_KEY_ID=''
S3_SECRET_ACCESS_KEY=''
if [ -n "${S3_KEYS_SECRET_ARN:-}" ]; then  # media on an S3-compatible service (R2): its key pair
  media_keys=$(secret "$S3_KEYS_SECRET_ARN")
  S3_ACCESS_KEY_ID=$(field access_key_id <<<"$media_keys")
  S3_SECRET_ACCESS_KEY=$(field secret_access_key <<<"$media_keys")
fi

# Without a bucket the backend serves uploads itself, under /static of the site: the links it writes
# need the site's public address (the domain when set, else this host's), or they point at localhost.
MEDUSA_FILE_URL=''
if [ -z "$S3_BUCKET" ]; then
  if [ -n "${PUBLIC_URL:-}" ]; then
    MEDUSA_FILE_URL="${PUBLIC_URL%/}/static"
  elif address=$(retry 3 public_address); then
    MEDUSA_FILE_URL="http://$address/static"
  elif [ -f .env ] && grep -q '^MEDUSA_FILE_URL=.' .env; then
    MEDUSA_FILE_URL=$(sed -n 's/^MEDUSA_FILE_URL=//p' .env)
    log "no public address from the instance metadata: keeping $MEDUSA_FILE_URL"
  else
    log "no public address from the instance metadata: uploads' links will point at localhost"
  fi
fi

cat >.env.new <<ENV
BACKEND_IMAGE=$BACKEND_IMAGE
STOREFRONT_IMAGE=$STOREFRONT_IMAGE
CADDY_IMAGE=$CADDY_IMAGE
DATA_DIR=$STATE_DIR
NODE_ENV=production
DATABASE_URL=$DATABASE_URL
NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS
REDIS_URL=$REDIS_URL
JWT_SECRET=$JWT_SECRET
COOKIE_SECRET=$COOKIE_SECRET
S3_BUCKET=$S3_BUCKET
S3_REGION=$S3_REGION
S3_ENDPOINT=$S3_ENDPOINT
S3_URL=$S3_URL
MEDUSA_FILE_URL=$MEDUSA_FILE_URL
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
MEDUSA_PUBLISHABLE_KEY=${MEDUSA_PUBLISHABLE_KEY:-}
ENV

compose_args=()
for file in $COMPOSE_FILES; do compose_args+=(-f "$file"); done
if [ "$MODE" = refresh ]; then
  if cmp -s .env.new .env; then
    rm .env.new
    log "secrets unchanged"
    exit 0
  fi
  mv .env.new .env
  log "secrets changed: recreating the containers"
  docker compose "${compose_args[@]}" up -d --remove-orphans
  exit 0
fi
mv .env.new .env
retry 5 docker compose "${compose_args[@]}" pull --quiet
docker compose "${compose_args[@]}" up -d --remove-orphans
systemctl daemon-reload
systemctl enable --now spawnit-refresh.timer
log "app started"
