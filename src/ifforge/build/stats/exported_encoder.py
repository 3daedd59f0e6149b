"""The sentence model on a faster CPU runtime (contamination.backend=onnx|openvino), with the same numbers.

sentence-transformers' own `backend="onnx"/"openvino"` goes through optimum, whose releases on the index require
transformers < 4.58 / < 5.6 (ifforge runs 5.x), so the model is exported here instead: the whole
SentenceTransformer (transformer, pooling, then unit length) is traced once with torch.onnx into one .onnx file,
kept under the artifact store keyed by its weights, and run by onnxruntime or OpenVINO. Tokenization stays
sentence-transformers' own, so truncation (max_seq_length) and pooling are the torch path's; on MiniLM the cosine
similarities match the torch fp32 path to ~1e-6.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from ifforge.build.stats.embeddings import Embedder
from ifforge.errors import UserError

BACKENDS = ("torch", "onnx", "openvino")


def _input_names(model: Any) -> List[str]:
    """The tokenizer's tensor outputs (input_ids, attention_mask and, for BERT-like models, token_type_ids)."""
    return [k for k, v in model.preprocess(["a"]).items() if hasattr(v, "shape")]


def _weights_key(model: Any) -> str:
    """A key that changes whenever the exported graph would: the weights, the inputs and the truncation length."""
    h = hashlib.sha256(f"{_input_names(model)}\0{model.max_seq_length}".encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def export_onnx(model: Any, folder: Path) -> Path:
    """The model as one ONNX graph (token ids in, unit-length sentence embeddings out), exported once per weights
    and reused: jobs of a sweep may race to write it, so it lands by an atomic rename."""
    import torch

    path = folder / f"{_weights_key(model)}.onnx"
    if path.is_file():
        return path
    names = _input_names(model)

    class Whole(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = model

        def forward(self, *tensors: Any) -> Any:
            out = self.st(dict(zip(names, tensors)))["sentence_embedding"]
            return torch.nn.functional.normalize(out, dim=-1)

    sample = model.preprocess(["an example", "a second, longer example sentence"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    # The TorchScript exporter (dynamo=False): the dynamo one needs onnxscript, and traces this model no better.
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(Whole().eval(), tuple(sample[n] for n in names), str(tmp), input_names=names,
                          output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def _session(backend: str, path: Path, threads: int) -> Callable[[Dict[str, Any]], Any]:
    """A function from a batch of numpy inputs to its embeddings, on onnxruntime or OpenVINO's CPU plugin."""
    if backend == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda feed: sess.run(None, feed)[0]
    import openvino as ov

    # f32 said outright: OpenVINO computes in bf16 by default on CPUs that have it (AMX, AVX512-BF16), which moves
    # similarities by ~1e-2, enough to cross a threshold.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
    return lambda feed: compiled(feed)[0]


class _Runtime:
    """Stands in for the SentenceTransformer inside an Embedder: the same encode() call, on the exported graph."""

    def __init__(self, model: Any, run: Callable[[Dict[str, Any]], Any]):
        self.model, self.run, self.names = model, run, _input_names(model)

    def get_sentence_embedding_dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def encode(self, texts: Sequence[str], batch_size: int, **_: Any) -> Any:
        """Unit-length rows in `texts` order; batches of similar length (longest first, as sentence-transformers
        sorts), so little compute goes to padding. The graph normalizes already."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self.model.preprocess([texts[i] for i in idx])
            out[idx] = self.run({n: batch[n].numpy() for n in self.names})
        return out


def check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise UserError(f"contamination.backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if backend != "torch" and device != "cpu":
        raise UserError(f"contamination.backend={backend} runs on the CPU; use backend=torch with device={device}")


def embedder(name: str, backend: str, device: str, batch_size: int, folder: Path) -> Embedder:
    """An Embedder for `name` on `backend`; the ONNX export is kept in `folder` (the artifact store's)."""
    check_backend(backend, device)
    out = Embedder(name, device=device, batch_size=batch_size)
    if backend != "torch":
        import torch

        path = export_onnx(out.model, folder)
        out.model = _Runtime(out.model, _session(backend, path, torch.get_num_threads()))
    return out
