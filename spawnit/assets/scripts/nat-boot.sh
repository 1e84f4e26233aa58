#!/bin/bash
# Turns this instance into the availability zone's NAT, at every boot.
# The route tables target a fixed network interface tagged spawnit:nat=NAT_NAME (source/destination
# check off): this script finds and attaches it, so a replacement instance from the Auto Scaling group
# takes the route over. Traffic from private subnets arrives on that interface and leaves, masqueraded,
# through the instance's default interface (found from the default route, not assumed to be eth0).
# With an Elastic IP tagged spawnit:nat=NAT_NAME, the default interface takes it: a stable egress address.
# Every step is logged; the AWS calls are retried (a replaced instance's attachment may still be
# detaching); the script fails, saying why, rather than leave a zone without egress.
set -euo pipefail
exec >>"${SPAWNIT_LOG:-/var/log/user-data.log}" 2>&1
log() { echo "== $(date -Is) nat: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# shellcheck source=/dev/null
source "${SPAWNIT_ROOT:-/opt/spawnit}/nat.conf"
IMDS=${IMDS_ENDPOINT:-http://169.254.169.254}
ATTEMPTS=${NAT_ATTACH_ATTEMPTS:-30}
DELAY=${RETRY_DELAY_SECONDS:-5}
log "boot of $NAT_NAME"

retry() {  # retry WHAT COMMAND...: runs COMMAND until it succeeds, ATTEMPTS times at most
  local what=$1 attempt=1
  shift
  until "$@"; do
    [ "$attempt" -lt "$ATTEMPTS" ] || return 1
    log "$what: attempt $attempt of $ATTEMPTS failed, retrying in ${DELAY}s"
    sleep "$DELAY"
    attempt=$((attempt + 1))
  done
}

imds() {
  local token
  token=$(curl -sf --max-time 5 -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60") &&
    curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/$1"
}

eni_device() {  # prints the local device carrying NAT_ENI_ID, if attached
  local dev mac
  for dev in /sys/class/net/*; do
    mac=$(cat "$dev/address")
    if [ "$(imds "network/interfaces/macs/$mac/interface-id" 2>/dev/null)" = "$NAT_ENI_ID" ]; then
      basename "$dev"
      return 0
    fi
  done
  return 1
}

has_address() {  # device: true once it is up with an IPv4 address
  ip -o -4 addr show dev "$1" up | grep -q inet
}

find_eni() {
  NAT_ENI_ID=$(aws ec2 describe-network-interfaces --region "$AWS_REGION" \
    --filters "Name=tag:spawnit:nat,Values=$NAT_NAME" --query 'NetworkInterfaces[0].NetworkInterfaceId' --output text)
}

egress_interface=$(ip -o -4 route show default | awk '{print $5; exit}')
[ -n "$egress_interface" ] || fail "no default route: no egress interface"
retry "instance id" imds instance-id >/dev/null || fail "the instance metadata service does not answer"
instance_id=$(imds instance-id)
log "instance $instance_id, egress through $egress_interface"

retry "find the interface" find_eni || fail "cannot list network interfaces"
if [ -z "$NAT_ENI_ID" ] || [ "$NAT_ENI_ID" = None ]; then
  fail "no network interface tagged spawnit:nat=$NAT_NAME"
fi
log "route target is $NAT_ENI_ID"

if eni_device >/dev/null; then
  log "$NAT_ENI_ID is already attached"
else
  log "attaching $NAT_ENI_ID"
  retry "attach $NAT_ENI_ID" aws ec2 attach-network-interface --region "$AWS_REGION" \
    --network-interface-id "$NAT_ENI_ID" --instance-id "$instance_id" --device-index 1 >/dev/null ||
    fail "could not attach $NAT_ENI_ID to $instance_id after $ATTEMPTS attempts"
fi
ingress_interface=
for _ in $(seq 90); do
  ingress_interface=$(eni_device) && has_address "$ingress_interface" && break
  ingress_interface=
  sleep 2
done
[ -n "$ingress_interface" ] || fail "$NAT_ENI_ID did not come up with an address"
log "$NAT_ENI_ID is $ingress_interface, up with an address"

if [ -n "${NAT_EIP_TAGGED:-}" ]; then
  allocation=$(aws ec2 describe-addresses --region "$AWS_REGION" \
    --filters "Name=tag:spawnit:nat,Values=$NAT_NAME" --query 'Addresses[0].AllocationId' --output text)
  primary_eni=$(imds "network/interfaces/macs/$(cat "/sys/class/net/$egress_interface/address")/interface-id")
  retry "associate $allocation" aws ec2 associate-address --region "$AWS_REGION" --allocation-id "$allocation" \
    --network-interface-id "$primary_eni" --allow-reassociation >/dev/null || fail "could not associate Elastic IP $allocation"
  log "egress address is Elastic IP $allocation"
fi

cat >/etc/sysctl.d/90-spawnit-nat.conf <<SYSCTL
net.ipv4.ip_forward = 1
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter = 2
SYSCTL
sysctl -q -p /etc/sysctl.d/90-spawnit-nat.conf
log "forwarding on"

# Answers to the private subnets go back through the fixed interface.
ip route replace "$VPC_CIDR" via "$SUBNET_ROUTER" dev "$ingress_interface"
log "route to $VPC_CIDR via $SUBNET_ROUTER on $ingress_interface"

rpm -q iptables-services >/dev/null || retry "install iptables-services" dnf install -y iptables-services
systemctl enable iptables
iptables -F
iptables -t nat -F
iptables -P INPUT ACCEPT
iptables -P FORWARD ACCEPT
iptables -t nat -A POSTROUTING -o "$egress_interface" -s "$VPC_CIDR" -j MASQUERADE
service iptables save
log "ready: $ingress_interface -> $egress_interface"
