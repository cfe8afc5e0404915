"""Serving over TLS (issue 20, first part): the gateway with its own certificate, taken by the
real google-genai SDK; `serve --simulate --tls` with a self-signed certificate for localhost
and the hint to trust it; a half-given pair refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from google import genai
from google.genai import types
from pydantic import ValidationError

from gemgate.config import Settings
from gemgate.tls import self_signed
from tests.conftest import TOKEN, run_gateway


def test_the_sdk_talks_to_a_gateway_over_tls(sim: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with run_gateway(sim.url, server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        assert gateway.url.startswith("https://")
        client = genai.Client(api_key=TOKEN, http_options=types.HttpOptions(
            base_url=gateway.url, client_args={"verify": str(cert)}))
        assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
        with pytest.raises(requests.exceptions.SSLError):  # not trusted without the cert
            requests.get(gateway.url + "/healthz", timeout=5)
        plain = gateway.url.replace("https://", "http://")
        with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on it
            requests.get(plain + "/healthz", timeout=5)
        assert requests.get(gateway.url + "/healthz", verify=str(cert), timeout=5).ok


def test_serve_simulate_tls_makes_a_certificate_and_says_how_to_trust_it() -> None:
    process = subprocess.Popen([sys.executable, "-m", "gemgate", "serve", "--simulate", "--tls",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        lines: list[str] = []
        assert process.stdout is not None
        while not any("SSL_CERT_FILE=" in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        shown = "".join(lines)
        url = re.search(r"listening on (https://\S+)", shown)
        cert = re.search(r"SSL_CERT_FILE=(\S+)", shown)
        assert url is not None and cert is not None, shown
        assert requests.get(url.group(1) + "/healthz", verify=cert.group(1), timeout=5).ok
    finally:
        process.terminate()
        process.wait(10)


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        Settings.model_validate({"server": {"tls_cert": str(cert)}})
    with pytest.raises(ValidationError, match="no such file"):
        Settings.model_validate({"server": {"tls_cert": str(cert),
                                            "tls_key": str(tmp_path / "missing.key")}})
