# Configuration files of the one-node cluster's daemons (sourced by cluster-up).
# shellcheck shell=bash

write_containerd_config() {
  mkdir -p "$E2E_DIR/containerd" "$E2E_DIR/cni"
  cat >"$E2E_DIR/containerd/config.toml" <<TOML
version = 2
root = "$E2E_DIR/containerd/root"
state = "$E2E_DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj, so sandboxes fail to start
  # ("can't get final child's PID from pipe") unless containerd keeps it at or above its own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E2E_DIR/cni"
TOML
  cat >"$E2E_DIR/cni/10-openray-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "openray-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$E2E_DIR/cni-ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
}

write_kubelet_config() {
  mkdir -p "$E2E_DIR/kubelet" "$E2E_DIR/pod-logs"
  cat >"$E2E_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
cgroupDriver: cgroupfs          # no systemd here; matches containerd's SystemdCgroup = false
failCgroupV1: false             # this VM has cgroup v1
failSwapOn: true
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
podLogsDir: $E2E_DIR/pod-logs
serializeImagePulls: false
# The images are imported locally and cannot be pulled again: never garbage-collect them,
# and keep disk-pressure evictions (which also delete images) out of the way of a busy disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
YAML
}

write_kube_proxy_config() {
  cat >"$E2E_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $PKI_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
conntrack: {maxPerCore: 0}      # leave the host's conntrack sysctls alone
YAML
}
