# Pinned versions of everything the e2e cluster runs. Sourced by the other scripts.
# The binary cache directory is keyed by K8S_VERSION; bumping any other pin below is
# picked up by the per-binary version checks in build-binaries (it rebuilds that binary).
K8S_VERSION=v1.33.13
ETCD_VERSION=v3.5.35
HELM_VERSION=v3.19.5
COREDNS_VERSION=v1.12.4
