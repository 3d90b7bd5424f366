"""Code generation: Python and typed stubs from mdfeed's wire schema (`proto/mdfeed.proto`).

The output is committed. Generation is deterministic for a given grpcio-tools and
mypy-protobuf version, which pyproject pins, so a test can regenerate into a temporary
folder and fail when the committed files differ.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO_FILE = "mdfeed.proto"
PROTO_OUTPUTS = ("mdfeed_pb2.py", "mdfeed_pb2.pyi", "mdfeed_pb2_grpc.py", "mdfeed_pb2_grpc.pyi")


class CodegenError(Exception):
    """Generation could not run or the compiler rejected its input."""


def _plugin(name: str) -> str:
    # The plugins are console scripts of the same environment, which need not be on PATH.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise CodegenError(f"{name} not found: install the dev extras (pip install 'mdfeed[dev]')")
    return found


def generate_proto(out_dir: Path, proto_source: Path | None = None) -> list[Path]:
    """Compile the schema into `out_dir`; return the files written.

    `proto_source` defaults to the schema installed with the `proto` package.
    """
    from grpc_tools import protoc  # a heavy import, needed only here

    source = proto_source or Path(str(resources.files("proto") / PROTO_FILE))
    with tempfile.TemporaryDirectory(prefix="mdfeed-codegen-") as tmp:
        include = Path(tmp) / "src"
        (include / "proto").mkdir(parents=True)
        shutil.copyfile(source, include / "proto" / PROTO_FILE)
        out = Path(tmp) / "out"
        out.mkdir()
        well_known = str(resources.files("grpc_tools") / "_proto")
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            f"proto/{PROTO_FILE}",
        ]
        if protoc.main(args) != 0:
            raise CodegenError(f"protoc rejected {source} (its message is above)")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in PROTO_OUTPUTS:
            target = out_dir / name
            shutil.copyfile(out / "proto" / name, target)
            written.append(target)
        return written
