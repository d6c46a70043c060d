// Not a binary: requiring sigs.k8s.io/gateway-api puts its CRDs
// (config/crd/standard/) into the module cache, where the local provider applies them.
module github.com/pytest-kuberay/toolchain/gateway-api

go 1.24.0

require sigs.k8s.io/gateway-api v1.4.1
