"""contamination.backend: the exported MiniLM on onnxruntime and OpenVINO gives the torch path's similarities."""

import numpy as np
import pytest

from ifforge.build.stats.exported_encoder import embedder
from ifforge.errors import UserError

TEXTS = ["Write a haiku about rain.", "Please write a haiku about the rain",
         "List three soups, in JSON, without using the letter e. " * 30,  # past max_seq_length: truncated alike
         "Écris une lettre à ton patron.", "x"]


def test_onnx_and_openvino_give_the_torch_similarities_and_export_once(tmp_path):
    ref = embedder("all-MiniLM-L6-v2", "torch", "cpu", 2, tmp_path).encode(TEXTS)
    for backend in ("onnx", "openvino"):
        got = embedder("all-MiniLM-L6-v2", backend, "cpu", 2, tmp_path).encode(TEXTS)  # batches of 2: padded
        assert got.shape == ref.shape
        assert np.abs(got @ got.T - ref @ ref.T).max() < 1e-4, backend  # Conifer's thresholds read cosines
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1 and not list(tmp_path.glob("*.tmp"))  # the second backend reused the first's file


def test_a_backend_off_the_cpu_or_unknown_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="runs on the CPU"):
        embedder("all-MiniLM-L6-v2", "openvino", "cuda", 8, tmp_path)
    with pytest.raises(UserError, match="must be one of torch, onnx, openvino"):
        embedder("all-MiniLM-L6-v2", "tensorrt", "cpu", 8, tmp_path)
