"""What a generator's tokens cost, in USD per million tokens.

A price set in the config (`price_prompt_per_mtok`, `price_completion_per_mtok`) wins for its side. A side left
null is looked up in genai-prices' bundled table (offline, maintained by Pydantic) for a model of a hosted
provider: the provider is OpenAI when the openai backend has no `base_url`, else whichever provider that URL
belongs to. A local model (hf_local, vllm) or an endpoint genai-prices does not know (a private server, a proxy)
has no price: its cost counts as $0 and says that the price is unknown, never that it was free.

genai-prices takes ~0.3 s to import, so it is imported on the first lookup, which happens when a cost is first
computed (a fully cached run never pays for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

LOCAL_BACKENDS = ("hf_local", "vllm")
# genai-prices rates are taken at this usage: the base tier of a model whose price grows with prompt length.
_PROBE_TOKENS = 1000


@dataclass(frozen=True)
class Price:
    """Per-million-token rates; a side that is None has no known price (it counts $0)."""

    prompt: Optional[float]
    completion: Optional[float]
    source: str  # where the rates come from, or why there are none

    @property
    def known(self) -> bool:
        return self.prompt is not None and self.completion is not None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * (self.prompt or 0.0) + completion_tokens * (self.completion or 0.0)) / 1e6

    def show(self, usd: float) -> str:
        """An amount costed at this price: "price unknown" rather than a $0 that is no price."""
        if self.prompt is None and self.completion is None:
            return "price unknown"
        return f"${usd:.4f}" + ("" if self.known else " (part of the price unknown)")

    def describe(self) -> str:
        """One phrase for logs, cards and the plan."""
        if self.prompt is None and self.completion is None:
            return f"price unknown ({self.source})"
        rates = "/".join("?" if r is None else f"${r:g}" for r in (self.prompt, self.completion))
        unknown = "" if self.known else ", a side marked ? is unknown and counts $0"
        return f"{rates} per M prompt/completion tokens ({self.source}{unknown})"

    @classmethod
    def from_report(cls, d: Optional[Dict[str, Any]]) -> Optional["Price"]:
        """The Price a report's `price` entry holds; None when it was never looked up (nothing was sent)."""
        if not d or d.get("known") is None:
            return None
        return cls(d.get("prompt_per_mtok"), d.get("completion_per_mtok"), str(d.get("source")))

    def as_dict(self) -> Dict[str, Any]:
        return {"known": self.known, "prompt_per_mtok": self.prompt, "completion_per_mtok": self.completion,
                "source": self.source}


def _configured(cfg: Any, key: str) -> Optional[float]:
    value = cfg.get(key)
    return None if value is None else float(value)


def price_for(cfg: Any) -> Price:
    """The price of the generator config node `cfg` (name, model, base_url and the two price fields)."""
    prompt = _configured(cfg, "price_prompt_per_mtok")
    completion = _configured(cfg, "price_completion_per_mtok")
    if prompt is not None and completion is not None:
        return Price(prompt, completion, "config")
    found = lookup(str(cfg.get("name")), str(cfg.get("model")), cfg.get("base_url"))
    source = found.source if prompt is None and completion is None else f"config; {found.source}"
    return Price(found.prompt if prompt is None else prompt,
                 found.completion if completion is None else completion, source)


def lookup(backend: str, model: str, base_url: Optional[str]) -> Price:
    """genai-prices' rates for `model` served by `backend` at `base_url`, or an unknown Price saying why."""
    from ifforge.secrets import redact_url

    if backend in LOCAL_BACKENDS:
        return Price(None, None, f"{backend} runs the model locally")
    import genai_prices
    from genai_prices import Usage, calc_price

    where: Dict[str, str] = {"provider_api_url": str(base_url)} if base_url else {"provider_id": "openai"}
    try:
        calc = calc_price(Usage(input_tokens=_PROBE_TOKENS, output_tokens=_PROBE_TOKENS), model, **where)
    except LookupError:
        at = f"at {redact_url(str(base_url))}" if base_url else "on OpenAI's API"
        return Price(None, None, f"genai-prices {genai_prices.__version__} has no price for {model!r} {at}")
    scale = 1e6 / _PROBE_TOKENS
    return Price(float(calc.input_price) * scale, float(calc.output_price) * scale,
                 f"genai-prices {genai_prices.__version__}: {calc.provider.id}/{calc.model.id}")


def role_cost(report: Dict[str, Any]) -> str:
    """What one role's requests cost, from its `Generator.report()`: the amount and the price behind it."""
    price = Price.from_report(report.get("price"))
    if price is None:
        return "$0 (no request was sent)"
    return f"{price.show(report['cost_usd'])}; {price.describe()}"


def total_cost(reports: Dict[str, Dict[str, Any]]) -> str:
    """The cost of a stage's roles together, naming the roles whose price is unknown."""
    usd = sum(r.get("cost_usd", 0.0) for r in reports.values())
    unknown = [role for role, r in reports.items() if r.get("calls") and not (r.get("price") or {}).get("known")]
    text = f"${usd:.4f}"
    return text + (f" plus what the requests to {', '.join(unknown)} cost (price unknown)" if unknown else "")
