"""TLS: the gateway verifies the server, and presents a client certificate when asked."""

from __future__ import annotations

import datetime
import ipaddress
import signal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.process.natsserver import NatsServer
from tests.test_cli import gateway_process, run_cli


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _issue(
    common: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _make_ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made for this test."""
    ca, ca_key = _make_ca("test-ca")
    ca_cert, _ = _write(tmp_path / "ca", ca, ca_key)
    server_cert, server_key = _write(tmp_path / "server", *_issue("127.0.0.1", ca, ca_key, server=True))
    client_cert, client_key = _write(tmp_path / "client", *_issue("log-gateway", ca, ca_key, server=False))
    return {
        "ca": ca_cert,
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


def _tls_config(pki: dict[str, Path], *, verify: bool) -> str:
    return (
        f'tls {{\n  cert_file: "{pki["server_cert"]}"\n  key_file: "{pki["server_key"]}"\n'
        f'  ca_file: "{pki["ca"]}"\n  verify: {str(verify).lower()}\n  timeout: 5\n}}\n'
    )


@pytest.mark.parametrize("client_cert", [False, True], ids=["server-verified", "client-certificate"])
async def test_run_over_tls(tmp_path: Path, pki: dict[str, Path], client_cert: bool) -> None:
    with NatsServer(store_dir=tmp_path / "nats", config=_tls_config(pki, verify=client_cert)) as server:
        url = server.url.replace("nats://", "tls://")
        flags = ["--nats-url", url, "--tls-ca", str(pki["ca"])]
        if client_cert:
            flags += ["--tls-cert", str(pki["client_cert"]), "--tls-key", str(pki["client_key"])]
        async with gateway_process(*flags) as (proc, lines):
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    assert any("log-gateway: ready" in line for line in lines)


def test_a_server_the_ca_does_not_vouch_for_is_refused(tmp_path: Path, pki: dict[str, Path]) -> None:
    stranger, other = _make_ca("other-ca")
    other_ca, _ = _write(tmp_path / "other-ca", stranger, other)
    with NatsServer(store_dir=tmp_path / "nats", config=_tls_config(pki, verify=False)) as server:
        url = server.url.replace("nats://", "tls://")
        result = run_cli("run", "--nats-url", url, "--tls-ca", str(other_ca), "--connect-timeout-s", "3")
    assert result.returncode == 1
    assert "log-gateway: ready" not in result.stdout
    assert "cannot start" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
