# Certificates and kubeconfigs for the one-node cluster (sourced by cluster-up).
# Static client certificates for every component: no bootstrap tokens, no CSR approval.
# ECDSA P-256 keys: generating them takes milliseconds, so a fresh PKI costs nothing per cluster-up.
# shellcheck shell=bash

# new_cert NAME SUBJECT [SAN]: a key and a CA-signed certificate in $PKI_DIR/NAME.{key,crt}.
new_cert() {
  local name="$1" subject="$2" san="${3:-}" ext="$PKI_DIR/$1.ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/$name.key" 2>/dev/null
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" -out "$PKI_DIR/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n $san ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 30 -extfile "$ext" -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr" "$ext"
}

# write_kubeconfig FILE CERT_NAME: a kubeconfig for the apiserver with that client certificate.
write_kubeconfig() {
  local file="$1" name="$2"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: openray-e2e
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$name.key")
contexts:
- name: openray-e2e
  context: {cluster: openray-e2e, user: $name}
current-context: openray-e2e
KUBECONFIG
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$PKI_DIR"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=openray-e2e-ca" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI_DIR/ca.crt" 2>/dev/null
  new_cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  # The apiserver's client certificate towards kubelets (logs, exec, port-forward).
  new_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  new_cert admin "/O=system:masters/CN=kubernetes-admin"
  new_cert kube-controller-manager "/CN=system:kube-controller-manager"
  new_cert kube-scheduler "/CN=system:kube-scheduler"
  new_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  new_cert kube-proxy "/CN=system:kube-proxy"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/sa.key" 2>/dev/null
  openssl ec -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
  write_kubeconfig "$KUBECONFIG_ADMIN" admin
  local c
  for c in kube-controller-manager kube-scheduler kubelet kube-proxy; do write_kubeconfig "$PKI_DIR/$c.kubeconfig" "$c"; done
}
