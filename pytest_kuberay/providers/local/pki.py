"""Certificates and keys for a throwaway local control plane, generated with ``cryptography``.

The local provider runs a real kube-apiserver, which only serves TLS and needs a
service-account signing key. Like envtest we make a fresh CA per cluster, so nothing
outlives the run and nothing is trusted beyond it:

* a CA (also the controller-manager's cluster-signing CA and the root CA published
  into every namespace as ``kube-root-ca.crt``);
* the API server's serving certificate, valid for the bridge IP (pods reach the API
  there), loopback, the in-cluster DNS names and the ``kubernetes`` Service IP;
* an admin client certificate in ``system:masters`` for us, the controller manager
  and the scheduler;
* an RSA key pair that signs and verifies service-account tokens.

No front-proxy (request-header) CA: that is only for aggregated API servers, which
we do not run.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "ClusterPKI",
    "IssuedCert",
    "apiserver_dns_names",
    "generate_pki",
    "issue_certificate",
]

log = logging.getLogger(__name__)

ADMIN_USER = "pytest-kuberay-admin"
ADMIN_GROUP = "system:masters"

_CLUSTER_DOMAIN = "cluster.local"
#: Long enough for any test session, short enough that a leaked CA is worthless soon.
_VALIDITY = dt.timedelta(days=7)
#: Clocks of processes on the same machine agree, but allow for a little skew anyway.
_BACKDATE = dt.timedelta(hours=1)

# ECDSA P-256 is fast to generate and understood by Go, Python's ssl and Traefik. The
# service-account key stays RSA: RS256 is what every token consumer expects.
_TLS_CURVE = ec.SECP256R1()
_SA_KEY_BITS = 2048


def apiserver_dns_names() -> list[str]:
    """DNS names clients use for the API server: loopback and the in-cluster Service names."""
    return [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{_CLUSTER_DOMAIN}",
    ]


@dataclass(frozen=True)
class ClusterPKI:
    """Paths of the PEM files one control plane uses (all in one directory)."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path

    @classmethod
    def in_dir(cls, directory: Path) -> ClusterPKI:
        """The file layout under ``directory`` (whether or not the files exist yet)."""
        return cls(
            dir=directory,
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            apiserver_cert=directory / "apiserver.crt",
            apiserver_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            service_account_key=directory / "sa.key",
            service_account_pub=directory / "sa.pub",
        )


def generate_pki(
    directory: Path,
    *,
    apiserver_ips: Sequence[str],
    service_ip: str = "10.96.0.1",
) -> ClusterPKI:
    """Generate a fresh CA and the certificates a control plane needs; write them as PEM into ``directory``.

    ``apiserver_ips`` are the addresses clients dial (the bridge gateway IP); 127.0.0.1 and
    ``service_ip`` (the first IP of the service CIDR, the ``kubernetes`` Service) are added.
    Keys are written with mode 0600.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = ClusterPKI.in_dir(directory)
    now = dt.datetime.now(dt.timezone.utc)

    ca_key = ec.generate_private_key(_TLS_CURVE)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pytest-kuberay-ca")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ips: list[str] = []
    for ip in [*apiserver_ips, "127.0.0.1", service_ip]:
        if ip not in ips:
            ips.append(ip)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in apiserver_dns_names()]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    server_key = ec.generate_private_key(_TLS_CURVE)
    server_cert = _leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        server_key,
        ca_cert,
        ca_key,
        now,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )

    admin_key = ec.generate_private_key(_TLS_CURVE)
    admin_cert = _leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]
        ),
        admin_key,
        ca_cert,
        ca_key,
        now,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=_SA_KEY_BITS)

    _write(pki.ca_cert, _cert_pem(ca_cert))
    _write(pki.ca_key, _key_pem(ca_key), secret=True)
    _write(pki.apiserver_cert, _cert_pem(server_cert))
    _write(pki.apiserver_key, _key_pem(server_key), secret=True)
    _write(pki.admin_cert, _cert_pem(admin_cert))
    _write(pki.admin_key, _key_pem(admin_key), secret=True)
    _write(pki.service_account_key, _key_pem(sa_key), secret=True)
    _write(
        pki.service_account_pub,
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    log.debug("generated PKI in %s (API server IPs %s)", directory, ", ".join(ips))
    return pki


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    *,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write a PEM file; keys are created 0600 from the start, never world-readable for a moment."""
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)  # O_CREAT ignores mode for an existing file, and umask may have narrowed it


@dataclass(frozen=True)
class IssuedCert:
    """A leaf certificate and its key, signed by a cluster CA."""

    cert: Path
    key: Path


def issue_certificate(
    pki: ClusterPKI,
    name: str,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    server: bool = False,
    ips: Sequence[str] = (),
    dns_names: Sequence[str] = (),
) -> IssuedCert:
    """Sign one more leaf with the cluster CA into ``<pki dir>/<name>.crt|.key``.

    Client certificates name a Kubernetes user (``common_name``) and groups
    (``organizations``): kubelet is ``system:node:<node>`` in ``system:nodes``, kube-proxy
    ``system:kube-proxy``. ``server=True`` makes a serving certificate for ``ips`` and ``dns_names``.
    """
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key} is not the EC key generate_pki writes")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    sans: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    key = ec.generate_private_key(_TLS_CURVE)
    cert = _leaf(
        x509.Name(attributes),
        key,
        ca_cert,
        ca_key,
        dt.datetime.now(dt.timezone.utc),
        usage=ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=sans or None,
    )
    issued = IssuedCert(pki.dir / f"{name}.crt", pki.dir / f"{name}.key")
    _write(issued.cert, _cert_pem(cert))
    _write(issued.key, _key_pem(key), secret=True)
    return issued
