"""Runs the stages a config asks for, resolving each one's upstream artifacts make-style.

A stage listed in `stages` is built (or reused); an upstream stage that is not listed is only looked up by its
fingerprint, and must already be done: `ifforge stages=[train]` trains on the dataset a previous
`stages=[build]` run with the same settings produced, and says so clearly when there is none.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from ifforge.artifacts import Artifact, ProcessGroup, artifact_for, ensure, write_json_atomic
from ifforge.errors import StageFailed, UserError
from ifforge.registry import Registry, discover

log = logging.getLogger("ifforge")
STAGES = Registry("stage")
STAGE_ORDER = ("build", "train", "eval")


def plain(node: Any) -> Any:
    """A resolved, plain-Python copy of a config node (what fingerprints and manifests store)."""
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node


class Stage:
    """A pure function of (its config slice, its upstream artifacts) that writes one artifact directory."""

    name = "stage"
    # A collective stage's `build` runs on every rank of a multi-process launch (e.g. training under torchrun),
    # together; `process_group` says which ranks. Only rank 0 takes the artifact lock and writes the manifest.
    collective = False

    def upstream(self, cfg: DictConfig) -> List[str]:
        return []

    def process_group(self, cfg: DictConfig) -> Optional[ProcessGroup]:
        """The ranks that build this stage together (collective stages only); None when running alone."""
        return None

    def config(self, cfg: DictConfig) -> Dict[str, Any]:
        """Exactly the config this stage's output depends on: it is hashed into the fingerprint."""
        raise NotImplementedError

    def settle(self, cfg: DictConfig) -> Optional[str]:
        """Fit the config to what this machine can run, before anything else (eval: benchmarks that may be skipped
        and cannot be had); a reason when nothing is left for the stage to do, None otherwise."""
        return None

    def preflight(self, cfg: DictConfig) -> None:
        """Cheap checks before any stage runs (keys, packages, files, wiring)."""

    def refreshes(self, cfg: DictConfig) -> bool:
        """Whether a generator this stage asks has `cache=refresh`: a done artifact is then built again, since
        reusing it would ask nothing."""
        return False

    def build(self, cfg: DictConfig, out: Path, inputs: Dict[str, Artifact]) -> Dict[str, Any]:
        """Write the artifact's files into `out`; return the manifest's `stats`."""
        raise NotImplementedError


def _stages() -> Registry:
    discover("ifforge.stages")
    return STAGES


def get_stage(name: str) -> Stage:
    return _stages().get(name)()


class Runner:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.root = Path(cfg.paths.artifacts)
        self._resolved: Dict[str, Artifact] = {}

    def artifact(self, name: str) -> Artifact:
        if name not in self._resolved:
            stage = get_stage(name)
            inputs = {u: self.artifact(u) for u in stage.upstream(self.cfg)}
            self._resolved[name] = artifact_for(self.root, name, stage.config(self.cfg), inputs)
        return self._resolved[name]

    def run(self, name: str) -> Artifact:
        stage = get_stage(name)
        inputs: Dict[str, Artifact] = {}
        for up in stage.upstream(self.cfg):
            art = self.artifact(up)
            if not art.done:
                raise UserError(
                    f"stage {name!r} needs the {up!r} artifact {art.path}, which is not built: add {up!r} to stages "
                    f"(e.g. stages=[{up},{name}])"
                )
            problem = art.problem(hashes=self.cfg.verify == "hash")  # an input is checked before it is loaded
            if problem is not None:
                raise StageFailed(f"the {up!r} artifact {art.path} is damaged ({problem}): add {up!r} to stages "
                                  f"(e.g. stages=[{up},{name}]) to rebuild it")
            inputs[up] = art
        art = self.artifact(name)
        config = stage.config(self.cfg)
        group = stage.process_group(self.cfg) if stage.collective else None
        return ensure(art, config, lambda out: stage.build(self.cfg, out, inputs), inputs=inputs, log=log.info,
                      group=group, verify=str(self.cfg.verify), rebuild=stage.refreshes(self.cfg))


def run(cfg: DictConfig, run_dir: Optional[Path] = None) -> Dict[str, str]:
    from ifforge.config import validate

    validate(cfg)
    check_artifacts_root(Path(str(cfg.paths.artifacts)))
    stages = [str(s) for s in cfg.stages]
    known = _stages().names()
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise UserError(f"unknown stage(s) {unknown}; stages can be any of {[s for s in STAGE_ORDER if s in known]}")
    ordered = [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]
    for s in list(ordered):
        why = get_stage(s).settle(cfg)
        if why is not None:
            log.warning("[%s] skipped: %s", s, why)
            ordered.remove(s)
    if cfg.get("plan"):  # printed, not done: nothing is sent, built or marked done (it runs the checks itself)
        from ifforge.plan import show

        show(cfg, ordered)
        return {}
    for s in ordered:  # everything a user can get wrong is reported before the first request is sent
        get_stage(s).preflight(cfg)
    from ifforge.track import Tracker, make_tracker

    runner = Runner(cfg)
    lead = _launch_rank() == 0  # with several ranks (torchrun, Slurm tasks) only rank 0 reports
    tracker = make_tracker(cfg) if lead else Tracker()
    outputs: Dict[str, str] = {}
    for s in ordered:
        try:
            art = runner.run(s)
        except UserError as e:
            err = type(e)(f"{s}: {e}")  # one line that says which stage failed
            tracker.stage_failed(s, err)
            raise err from None
        except BaseException as e:
            tracker.stage_failed(s, e)
            raise
        outputs[s] = str(art.path)
        log.info("[%s] done: %s", s, art.path)
        # Written after each stage, so a later failure keeps what finished.
        if run_dir is not None and lead:
            write_json_atomic(Path(run_dir) / "outputs.json", outputs)
        tracker.stage_done(s, art)
    return outputs


def check_artifacts_root(root: Path) -> None:
    """`paths.artifacts` must be (or become) a writable directory: one line now beats a traceback mid-run."""
    for p in [root, *root.parents]:
        if p.exists():
            if not p.is_dir():
                raise UserError(f"paths.artifacts={root}: {p} is a file, not a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise UserError(f"paths.artifacts={root}: {p} is not writable")
            return


def _launch_rank() -> int:
    """This process's rank in a multi-process launch (torchrun/accelerate set RANK, Slurm SLURM_PROCID)."""
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)

