"""The local control plane's PKI: what the API server, clients and pods will check, checked here first."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from pytest_kuberay.providers.local.pki import ADMIN_GROUP, ADMIN_USER, ClusterPKI, generate_pki

BRIDGE_IP = "10.244.7.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return generate_pki(tmp_path_factory.mktemp("pki"), apiserver_ips=[BRIDGE_IP])


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_file_is_written_and_keys_are_private(pki: ClusterPKI) -> None:
    keys = [pki.ca_key, pki.apiserver_key, pki.admin_key, pki.service_account_key]
    public = [pki.ca_cert, pki.apiserver_cert, pki.admin_cert, pki.service_account_pub]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert b"PRIVATE KEY" in path.read_bytes()
    for path in public:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_ca_is_a_ca_and_signs_both_leaves(pki: ClusterPKI) -> None:
    ca = _cert(pki.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (pki.apiserver_cert, pki.admin_cert):
        cert = _cert(leaf)
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_serving_cert_has_exactly_the_expected_sans(pki: ClusterPKI) -> None:
    san = _cert(pki.apiserver_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(
        [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
    )
    assert sorted(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) == sorted(
        [BRIDGE_IP, "127.0.0.1", "10.96.0.1"]
    )


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.DNSName("kubernetes"),
        x509.IPAddress(ipaddress.ip_address(BRIDGE_IP)),
        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ],
    ids=str,
)
def test_a_client_trusting_the_ca_accepts_the_serving_cert_for(
    pki: ClusterPKI, name: x509.DNSName | x509.IPAddress
) -> None:
    """Full RFC 5280 path validation, as a TLS client does it (chain, validity, SAN, server EKU)."""
    verifier = PolicyBuilder().store(Store([_cert(pki.ca_cert)])).build_server_verifier(name)
    chain = verifier.verify(_cert(pki.apiserver_cert), [])
    assert chain[-1] == _cert(pki.ca_cert)


def test_serving_cert_is_refused_for_other_names(pki: ClusterPKI) -> None:
    verifier = PolicyBuilder().store(Store([_cert(pki.ca_cert)])).build_server_verifier(x509.DNSName("example.com"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(_cert(pki.apiserver_cert), [])


def test_admin_cert_is_a_client_cert_in_system_masters(pki: ClusterPKI) -> None:
    cert = _cert(pki.admin_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ADMIN_USER == "pytest-kuberay-admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [ADMIN_GROUP]
    assert ADMIN_GROUP == "system:masters"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # Kubernetes client certs carry no SAN, so the web-PKI client verifier does not apply; the signature does.
    cert.verify_directly_issued_by(_cert(pki.ca_cert))


def test_service_account_keys_are_one_rsa_pair(pki: ClusterPKI) -> None:
    private = serialization.load_pem_private_key(pki.service_account_key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pki.service_account_pub.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()


def test_each_call_makes_a_new_ca(tmp_path: Path, pki: ClusterPKI) -> None:
    other = generate_pki(tmp_path, apiserver_ips=[BRIDGE_IP])
    assert other.ca_cert.read_bytes() != pki.ca_cert.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - any signature failure will do
        _cert(other.admin_cert).verify_directly_issued_by(_cert(pki.ca_cert))
