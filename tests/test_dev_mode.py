"""`support-service dev` as a new user runs it: embedded servers, demo data, tokens, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
from app.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


class DevProcess:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SPRING_DATASOURCE_URL", "REDIS_HOST")}
        env.update(SERVER_PORT=str(self.port), GRPC_SERVER_PORT=str(free_port()), LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "dev", "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "Press Ctrl-C" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> str:
        assert self.ready.wait(120), "dev mode did not start:\n" + "".join(self.lines)
        output = "".join(self.lines)
        assert "Press Ctrl-C" in output, output
        return output

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self.reader.join(10)
        self.proc.stdout.close()
        return code


def _token(output: str, role: str) -> str:
    return re.search(rf"^\s+{role}\s+(\S+)$", output, flags=re.M)[1]


async def test_dev_mode_starts_embedded_services_with_demo_data_and_reuses_them(tmp_path):
    data_dir = tmp_path / "data"
    first = DevProcess(data_dir)
    try:
        output = first.wait_ready()
        assert "demo data loaded" in output
        base = f"http://127.0.0.1:{first.port}"
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {_token(output, 'customer')}"}
            async with http.get(f"{base}/api/v1/tickets", headers=headers) as resp:
                assert resp.status == 200
                demo_tickets = (await resp.json())["total"]
            async with http.get(f"{base}/health/ready") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/api/docs") as resp:
                assert resp.status == 200
            for page, role, rest in (("demo", "customer", ""), ("console", "agent", "&status=online")):
                url = re.search(rf"({re.escape(base)}/{page}#token=([^&\s]+)(\S*))$", output, flags=re.M)
                assert url and url[2] == _token(output, role) and url[3] == rest, output
                async with http.get(url[1].split("#")[0]) as resp:
                    assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        assert demo_tickets >= 2
    finally:
        assert first.stop() == 0

    second = DevProcess(data_dir)
    try:
        output = second.wait_ready()
        assert "demo data loaded" not in output  # the data was kept, not loaded again
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {_token(output, 'customer')}"}
            async with http.get(f"http://127.0.0.1:{second.port}/api/v1/tickets", headers=headers) as resp:
                assert (await resp.json())["total"] == demo_tickets
    finally:
        assert second.stop() == 0
