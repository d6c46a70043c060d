"""The local provider's real Kubernetes node: containerd + runc, CNI, kubelet, kube-proxy and CoreDNS."""
