#!/usr/bin/env bash
# A throwaway PKI for the test cluster (openssl): one CA, serving certificates for the API server and the
# kubelet, client certificates for each component, and the ServiceAccount token signing key. Kept in
# $OZ_TEST_CACHE/kube/pki and reused while valid; never committed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$KUBE_PKI"
cd "$KUBE_PKI"

if [[ -s ca.crt && -s sa.key && -s .complete ]] && openssl x509 -in ca.crt -noout -checkend 86400 >/dev/null; then
  exit 0
fi
rm -f ./*.crt ./*.key ./*.pub ./*.csr .complete
klog "generating the cluster PKI in $KUBE_PKI"

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=oz-test-kube-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# cert <name> <subject> <extendedKeyUsage> [subjectAltName]
cert() {
  local name="$1" subject="$2" usage="$3" san="${4:-}"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days 30 -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=oz-test-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet-client "/O=system:nodes/CN=system:node:$KUBE_NODE_NAME" clientAuth
cert kubelet "/CN=$KUBE_NODE_NAME" serverAuth "IP:127.0.0.1,DNS:$KUBE_NODE_NAME"

openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key
touch .complete
