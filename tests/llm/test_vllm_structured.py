"""The vllm backend turns a call's response_format into vLLM's structured-output sampling parameters (vLLM does not
install on CPU machines: a stand-in `vllm.sampling_params` module records what the backend builds)."""

import sys
import types

from omegaconf import OmegaConf

from ifforge.llm.structured import obj, response_format
from ifforge.config import GeneratorConfig
from ifforge.llm.backends.vllm import VLLMBackend


class Params:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def backend():
    return VLLMBackend(OmegaConf.structured(GeneratorConfig(name="vllm", model="m", structured="json")))


SCHEMA = obj(verdict={"type": "string", "enum": ["Yes", "No"]})


def test_structured_outputs_on_current_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params",
                        types.SimpleNamespace(StructuredOutputsParams=Params, GuidedDecodingParams=Params))
    kwargs = backend()._sampling_kwargs({"max_tokens": 8, "response_format": response_format("f", SCHEMA)})
    assert kwargs["structured_outputs"].kwargs == {"json": SCHEMA} and "guided_decoding" not in kwargs
    assert "structured_outputs" not in backend()._sampling_kwargs({"max_tokens": 8})


def test_guided_decoding_on_older_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", types.SimpleNamespace(GuidedDecodingParams=Params))
    kwargs = backend()._sampling_kwargs({"max_tokens": 8, "response_format": response_format("f", SCHEMA)})
    assert kwargs["guided_decoding"].kwargs == {"json": SCHEMA}
