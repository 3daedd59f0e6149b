"""`ifforge --help`: the config groups and the composed config, from one composition.

Hydra's own `--help` lists the groups by asking its config loader once per group and per kind, and every ask
deep-copies the whole config repository (ConfigStore schemas included): ~130 copies, ~5 s here. This help composes
the config once (with the command line's overrides, like Hydra's) and lists the groups straight from the config
directory and the ConfigStore, leaving out the `schema_<option>` nodes option files pull in (they are no option to
choose). Anything unusual on the command line (another config dir or name, `--hydra-help`) goes to Hydra's help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Set

from omegaconf import OmegaConf

HEADER = """ifforge: instruction-following data (DeMoRecon, Conifer), TRL training and evaluation, from one Hydra config.

Usage: ifforge [group=option ...] [key=value ...]   run the stages in `stages` (build, train, eval)
       ifforge [overrides] --cfg job               print the composed config and the trainer arguments; run nothing
       ifforge -m key=a,b [overrides]              a sweep: one job per combination (see hydra/launcher)
"""

FOOTER = """Powered by Hydra (https://hydra.cc)
Use --hydra-help to view Hydra specific help
"""


def config_groups(conf_dir: str) -> Dict[str, List[str]]:
    """{group: sorted options} of the app's groups (not hydra/...): option files under `conf_dir` and options in
    Hydra's ConfigStore, minus the schema nodes."""
    from hydra.core.config_store import ConfigStore

    groups: Dict[str, Set[str]] = {}
    root = Path(conf_dir)
    for path in root.rglob("*.yaml"):
        group = path.parent.relative_to(root).as_posix()
        if group != "." and group.split("/")[0] != "hydra":
            groups.setdefault(group, set()).add(path.stem)

    def walk(node: dict, prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{name}/")
            elif prefix and not prefix.startswith("hydra/") and not name.startswith("schema_"):
                groups.setdefault(prefix[:-1], set()).add(name[: -len(".yaml")] if name.endswith(".yaml") else name)

    walk(ConfigStore.instance().repo, "")
    return {g: sorted(opts) for g, opts in sorted(groups.items()) if opts}


def render_help(conf_dir: str, argv: List[str]) -> Optional[str]:
    """The help text for `ifforge ARGV --help`, or None where Hydra's own help must answer."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser  # the flags `hydra.main` itself accepts
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ifforge.errors import UserError

    args = get_args_parser().parse_args(argv)
    if args.hydra_help or args.config_path or args.config_name or args.config_dir:
        return None
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name="ifforge"):
        try:
            cfg = compose("config", overrides=list(args.overrides), return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as e:  # a wrong override: Hydra's message, no traceback
            raise UserError(str(e)) from None
        HydraConfig.instance().set_config(cfg)  # so that --resolve can resolve ${hydra:...}
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        config = OmegaConf.to_yaml(job, resolve=bool(args.resolve))
    groups = "\n".join(f"{g}: {', '.join(opts)}" for g, opts in config_groups(conf_dir).items())
    return (f"{HEADER}\n== Configuration groups ==\nCompose your configuration from those groups (group=option)\n\n"
            f"{groups}\n\n\n== Config ==\nOverride anything in the config (foo.bar=value)\n\n{config}\n{FOOTER}")
