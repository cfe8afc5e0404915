"""Serving over TLS: the gateway's own certificate (`server.tls_cert`, `server.tls_key`, or
`gemgate serve --tls-cert F --tls-key F`), or a self-signed one for localhost made on the spot
(`gemgate serve --simulate --tls`).

Why a relay must speak TLS itself: the Python SDK turns any base_url into `wss://` for the Live
API, so a gateway on plain HTTP cannot take `client.aio.live.connect()` (see
../shared/reference/gemini-live-batch-caching.md §1). A TLS terminator in front works too."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from aiohttp import web

TLS = web.AppKey("tls", ssl.SSLContext)


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """TLS 1.2+ with the certificate chain and key from PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def self_signed(folder: Path, days: int = 30) -> tuple[Path, Path]:
    """A certificate for localhost, 127.0.0.1 and ::1 and its key, written to `folder` (made
    afresh each time; the key readable by this user only). Returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gemgate localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = x509.SubjectAlternativeName([
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1"))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(names, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "gemgate-localhost.pem", folder / "gemgate-localhost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def trust_hint(cert: Path) -> list[str]:
    """How to make clients trust a self-signed certificate."""
    return [f"TLS with a self-signed certificate for localhost: {cert}",
            f"  make clients trust it: export SSL_CERT_FILE={cert}",
            f"  (or in Python: types.HttpOptions(base_url=..., client_args={{'verify': '{cert}'}}, "
            f"async_client_args={{'ssl': ssl.create_default_context(cafile='{cert}')}}))"]
