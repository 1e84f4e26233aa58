#!/bin/bash
# Turns this instance into the availability zone's NAT, at every boot.
# The route tables target a fixed network interface tagged spawnit:nat=NAT_NAME (source/destination
# check off): this script finds and attaches it, so a replacement instance from the Auto Scaling group takes the route over.
# Traffic from private subnets arrives on that interface and leaves, masqueraded, through the
# instance's default interface (found from the default route, not assumed to be eth0).
set -euo pipefail
exec >>/var/log/user-data.log 2>&1
echo "== $(date -Is) nat boot"

# shellcheck source=/dev/null
source /opt/spawnit/nat.conf

imds() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

egress_interface=$(ip -o -4 route show default | awk '{print $5; exit}')
instance_id=$(imds instance-id)
NAT_ENI_ID=$(aws ec2 describe-network-interfaces --region "$AWS_REGION" \
  --filters "Name=tag:spawnit:nat,Values=$NAT_NAME" --query 'NetworkInterfaces[0].NetworkInterfaceId' --output text)
if [ -z "$NAT_ENI_ID" ] || [ "$NAT_ENI_ID" = None ]; then
  echo "no network interface tagged spawnit:nat=$NAT_NAME" >&2
  exit 1
fi

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

if ! eni_device >/dev/null; then
  aws ec2 attach-network-interface --region "$AWS_REGION" \
    --network-interface-id "$NAT_ENI_ID" --instance-id "$instance_id" --device-index 1
fi
for _ in $(seq 60); do
  ingress_interface=$(eni_device) && break
  sleep 2
done
: "${ingress_interface:?network interface $NAT_ENI_ID did not appear}"

cat >/etc/sysctl.d/90-spawnit-nat.conf <<SYSCTL
net.ipv4.ip_forward = 1
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter = 2
SYSCTL
sysctl --system >/dev/null

# Answers to the private subnets go back through the fixed interface.
ip route replace "$VPC_CIDR" via "$SUBNET_ROUTER" dev "$ingress_interface"

rpm -q iptables-services >/dev/null || dnf install -y iptables-services
systemctl enable iptables
iptables -F
iptables -t nat -F
iptables -P INPUT ACCEPT
iptables -P FORWARD ACCEPT
iptables -t nat -A POSTROUTING -o "$egress_interface" -s "$VPC_CIDR" -j MASQUERADE
service iptables save
echo "== $(date -Is) nat ready: $ingress_interface -> $egress_interface"
