"""Prompt templates: Jinja2 files in this package, one per LLM step, rendered with StrictUndefined so a missing
variable is an error, not an empty hole in a prompt. A user can point any step at their own file instead."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ifforge.errors import UserError

if TYPE_CHECKING:  # jinja2 itself loads with the first template (~80 ms): option modules import this at startup
    import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _env(root: str) -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False)


def load_template(name: str, override: Optional[str] = None) -> jinja2.Template:
    """`name` is a path under this package (e.g. "demorecon/filter_seeds.j2"); `override` a user's own file."""
    import jinja2

    if override:
        p = Path(override).expanduser().resolve()
        if not p.is_file():
            raise UserError(f"prompt template not found: {p}")
        return _env(str(p.parent)).get_template(p.name)
    try:
        return _env(str(PROMPTS_DIR)).get_template(name)
    except jinja2.TemplateNotFound:
        raise UserError(f"no packaged prompt template {name!r}") from None


def render(name: str, override: Optional[str] = None, **variables: Any) -> str:
    import jinja2

    variables.setdefault("structured", False)  # true: the step's reply is held to a JSON schema (its JSON variant)
    try:
        return load_template(name, override).render(**variables).strip()
    except jinja2.UndefinedError as e:
        raise UserError(f"prompt template {override or name}: {e.message}") from None
