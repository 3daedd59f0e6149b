"""Training chat templates: the model's own format with `{% generation %}` around what the assistant says.

TRL's assistant-only loss needs those markers to tell assistant tokens from the rest. Few released templates have
them, so ifforge ships one per model family of the papers (templates/*.jinja), written to render exactly what the
original template renders; `model.chat_template` names one (or gives a path to a user's own .jinja file). When it
is null, the tokenizer's template is used if it has markers, else TRL's own patched copy for the families TRL
knows, else the user is told what to set. The chosen template is saved with the checkpoint, so the trained model
is served in the format it was trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple

from ifforge.errors import UserError

log = logging.getLogger("ifforge")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Conversations on which a training template must render what the original renders.
_PROBES = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}],
]


def names() -> List[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja"))


def load(name_or_path: str) -> str:
    """A shipped template by name, or a .jinja file by path."""
    shipped = TEMPLATES_DIR / f"{name_or_path}.jinja"
    if shipped.is_file():
        return shipped.read_text()
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.read_text()
    raise UserError(f"model.chat_template={name_or_path!r} is neither a shipped template ({', '.join(names())}) "
                    "nor a .jinja file")


def check_setting(name_or_path: Optional[str], needs_markers: bool) -> None:
    """Preflight: the configured template exists, with generation markers when the loss needs them."""
    if name_or_path is None:
        return
    from trl.chat_template_utils import has_generation_markers

    template = load(name_or_path)
    if needs_markers and not has_generation_markers(template):
        raise UserError(f"model.chat_template={name_or_path!r} has no {{% generation %}} markers around the "
                        "assistant's reply, so the assistant-only loss cannot find the tokens to train on")


def choose(tokenizer, setting: Optional[str], needs_markers: bool) -> Tuple[Optional[str], str]:
    """(template to install or None to keep the tokenizer's, where it comes from) for this tokenizer."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if setting is not None:
        template = load(setting)
        if tokenizer.chat_template and not renders_like(tokenizer, template, tokenizer.chat_template):
            # Keep going (a user's own file may differ on purpose) but say so: the checkpoint will be served with
            # this template, not the original one.
            log.warning("[train] model.chat_template=%s renders differently from the tokenizer's own template",
                        setting)
        return template, setting
    original = tokenizer.chat_template
    if not original:
        raise UserError("the tokenizer has no chat template: set model.chat_template to one of "
                        f"{', '.join(names())} or a .jinja file")
    if not needs_markers or has_generation_markers(original):
        return None, "tokenizer"
    try:
        patched = get_training_chat_template(tokenizer)
    except Exception:  # TRL raises for template families it does not know
        patched = None
    if patched is None:
        raise UserError("the model's chat template has no {% generation %} markers, which the assistant-only "
                        f"loss needs: set model.chat_template to one of {', '.join(names())} or a .jinja file of "
                        "your own, or objective.trainer.assistant_only_loss=false to train on whole sequences")
    return patched, "trl"


def renders_like(tokenizer, ours: str, theirs: str) -> bool:
    """Whether two templates render the probe conversations identically (markers render to nothing)."""
    for messages in _PROBES:
        for add_prompt in (False, True):
            try:
                a = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_prompt,
                                                  chat_template=ours)
                b = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_prompt,
                                                  chat_template=theirs)
            except Exception:  # e.g. a template that refuses system turns: compare what both can render
                continue
            if a != b:
                return False
    return True
