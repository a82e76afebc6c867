"""schemathesis against the admin API's own OpenAPI document: no 5xx, no schema violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import ADMIN_KEY, ThreadedGateway, gateway_config


def test_admin_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    gateway = ThreadedGateway(gateway_config(f"sqlite:///{tmp_path / 'schema.db'}")).start()
    try:
        command = shutil.which("schemathesis") or shutil.which("st")
        assert command, "schemathesis is a test dependency"
        result = subprocess.run(
            [
                command,
                "run",
                gateway.url + "/openapi.json",
                "-H",
                f"Authorization: Bearer {ADMIN_KEY}",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--checks",
                "not_a_server_error,response_schema_conformance",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
            env={
                "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                "HOME": str(tmp_path),
            },
        )
    finally:
        gateway.stop()
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout
