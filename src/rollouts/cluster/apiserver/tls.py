"""The server's TLS identity: a self-signed certificate for 127.0.0.1/localhost kept in the rollouts home.

Kubernetes clients (kubectl's client-go) send a bearer token only over HTTPS, so the local API server
speaks TLS; the kubeconfig carries the certificate as its certificate authority.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "apiserver.crt"
KEY_FILE = "apiserver.key"


def _generate(cert_path: Path, key_path: Path, address: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rollouts-local")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                   x509.IPAddress(ipaddress.ip_address("::1"))]
    try:
        extra = ipaddress.ip_address(address)
        if str(extra) not in ("127.0.0.1", "::1") and not extra.is_unspecified:
            alt.append(x509.IPAddress(extra))
    except ValueError:
        alt.append(x509.DNSName(address))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _covers(cert_path: Path, address: str) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return address in names.get_values_for_type(x509.DNSName)
    return wanted.is_unspecified or wanted in names.get_values_for_type(x509.IPAddress)


def certificate(home: Path, address: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) files for `address`, generated on first use and when the address is new."""
    cert_path, key_path = home / CERT_FILE, home / KEY_FILE
    if not (cert_path.exists() and key_path.exists() and _covers(cert_path, address)):
        _generate(cert_path, key_path, address)
    return cert_path, key_path


def server_context(home: Path, address: str = "127.0.0.1") -> ssl.SSLContext:
    cert_path, key_path = certificate(home, address)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
