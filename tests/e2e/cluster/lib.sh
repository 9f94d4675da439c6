# Shared settings for the e2e cluster scripts. Sourced, never executed.
# shellcheck shell=bash
HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HARNESS_DIR/../../.." && pwd)"
# shellcheck source=versions.sh
. "$HARNESS_DIR/versions.sh"

OPENRAY_CACHE="${OPENRAY_CACHE:-$HOME/.cache/openray}"
K8S_CACHE="$OPENRAY_CACHE/k8s-$K8S_VERSION"
BIN_DIR="$K8S_CACHE/bin"
E2E_DIR="${OPENRAY_E2E_DIR:-/var/tmp/openray-e2e}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Images: OCI archives and their input keys are cached here; buildah keeps its own storage here
# too, apart from any other buildah user on the machine.
IMAGE_CACHE="$OPENRAY_CACHE/images"
BUILDAH_ROOT="$OPENRAY_CACHE/buildah"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PAUSE_IMAGE=localhost/pause:local
BASE_IMAGE=localhost/debian-py:bookworm
COREDNS_IMAGE="localhost/coredns:$COREDNS_VERSION"
# The head image is also tagged as the image the seed's examples/rayjob-sample.yaml names.
RAY_ALIAS_IMAGE=docker.io/rayproject/ray:2.4.0

bah() { buildah --root "$BUILDAH_ROOT/storage" --runroot "$BUILDAH_ROOT/run" --storage-driver overlay "$@"; }

# The cluster. The node's IP is a /32 alias on `lo`: pods reach it through the host's routing
# (so the apiserver's Service endpoint works), but nothing outside this machine can.
NODE_NAME="${OPENRAY_E2E_NODE_NAME:-openray-e2e}"
NODE_IP="${OPENRAY_E2E_NODE_IP:-10.88.0.1}"
SERVICE_CIDR=10.0.0.0/24
API_SERVICE_IP=10.0.0.1
DNS_SERVICE_IP=10.0.0.10
POD_CIDR=10.244.0.0/24
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=6443
ETCD_CLIENT_PORT="${OPENRAY_E2E_ETCD_PORT:-2379}"
ETCD_PEER_PORT=$((ETCD_CLIENT_PORT + 1))
PKI_DIR="$E2E_DIR/pki"
PID_DIR="$E2E_DIR/pids"
LOG_DIR="$E2E_DIR/logs"
CONTAINERD_SOCK="$E2E_DIR/containerd/containerd.sock"
KUBECONFIG_ADMIN="$E2E_DIR/kubeconfig"

kubectl_admin() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# The daemons, in start order. Each runs in its own session (setsid) with its PID in $PID_DIR.
DAEMONS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }
# alive NAME: its recorded PID runs and is still that daemon (not a recycled PID).
alive() {
  local pid; pid="$(pid_of "$1")"
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$1"
}
apiserver_ready() { kubectl_admin get --raw /readyz >/dev/null 2>&1; }
node_ready() {
  [[ "$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
