"""`ifforge` / `python -m ifforge`: compose the Hydra config, then run the stages it asks for."""

from __future__ import annotations

import errno
import gc
import logging
import signal
import sqlite3
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ifforge.config import register_configs
from ifforge.errors import Interrupted, UserError
from ifforge.secrets import argv_credentials, redact_url, refusal, scrub_text

# realpath: in the source tree src/ifforge/conf is a symlink to the top-level conf/; a wheel carries a copy.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
log = logging.getLogger("ifforge")


def _resource(rel: str) -> str:
    return str(Path(__file__).resolve().parent / "resources" / rel)


def _heaviest_stage(stages: list) -> str:
    """The stage that sizes a Slurm job: train > eval > build."""
    return next((s for s in ("train", "eval", "build") if s in list(stages)), "build")


for _name, _fn in (("ifforge.resource", _resource), ("ifforge.heaviest_stage", _heaviest_stage)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
register_configs()
# What start-up made (Hydra, OmegaConf, the schemas: ~50k objects) lives until exit: out of the collector's view,
# no later collection, nor the one at exit, walks it again (~0.1 s of `ifforge --help` or a cached build).
gc.freeze()


def _scrub_log_records() -> None:
    """Credentials in URLs never reach the console or a log file: every log record is scrubbed as it is made
    (a record factory outlives the logging configuration Hydra installs for each run and sweep)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "ifforge_scrubs", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return record
        clean = redact_url(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return record

    factory.ifforge_scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signum, signal.Signals(signum).name)


def _install_signal_handlers() -> Dict[int, Any]:
    """SIGTERM and SIGUSR2 (Slurm preemption, `scancel`) end the run like Ctrl-C: status.json says so and the
    artifact lock is released. A handler someone else installed (submitit's requeue) is left alone."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGUSR2):
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread: leave signals to whoever owns it
            pass
    return previous


def _explain(e: BaseException) -> Optional[Tuple[str, int, str]]:
    """(one-line message, exit code, status) for the errors a user can cause or must act on; None otherwise."""
    if isinstance(e, Interrupted):
        return str(e), e.exit_code, "interrupted"
    if isinstance(e, KeyboardInterrupt):
        return str(Interrupted(signal.SIGINT, "Ctrl-C")), 128 + signal.SIGINT, "interrupted"
    if isinstance(e, UserError):
        return str(e), e.exit_code, "failed"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return f"no space left on the device{where}: free some space, then rerun to resume", 1, "failed"
    if isinstance(e, sqlite3.OperationalError) and ("full" in str(e) or "disk I/O" in str(e)):  # the cache
        return (f"cannot write the response cache (paths.cache): {e}; if its disk is full (no space left on the "
                f"device), free some space, then rerun to resume", 1, "failed")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS):
        return f"cannot write {e.filename or 'a file'}: {e.strerror}; check paths.artifacts / paths.cache", 1, "failed"
    return None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.types import RunMode

    from ifforge.artifacts import write_json_atomic
    from ifforge.pipeline import run

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    previous = _install_signal_handlers()
    try:
        outputs = run(cfg, run_dir=run_dir)
    except BaseException as e:
        known = _explain(e)
        status = known[2] if known else "failed"
        message = known[0] if known else f"{type(e).__name__}: {e}"
        # status.json lets a sweep summary show this job as failed, with its error, instead of missing.
        write_json_atomic(run_dir / "status.json", {"status": status, "error": message[:2000]})
        if known is None or isinstance(e, SystemExit):
            raise
        print(f"ifforge: error: {redact_url(known[0])}", file=sys.stderr)  # one line instead of a traceback wall
        if hc.mode != RunMode.MULTIRUN or known[2] == "interrupted":  # in a sweep the other jobs go on
            sys.exit(known[1])
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_json_atomic(run_dir / "status.json", {"status": "ok"})
    tables = Path(outputs.get("eval", "")) / "tables.md"
    if "eval" in outputs and tables.is_file():  # the scores, laid out like the papers' tables
        print(tables.read_text(encoding="utf-8").strip() + "\n")
    from ifforge.report import run_report

    report = run_report(outputs)
    if report:  # what each stage did: rows kept and rejected per step, the loss, the scores
        print(report + "\n")
    for stage, path in outputs.items():
        print(f"{stage}: {path}")


def _trainer_arguments(printed: str) -> str:
    """What `--cfg job` adds below the config: the trainer arguments the train stage would use on this machine
    (the paper's row, the objective, your overrides, and the accumulation that keeps the recipe's global batch)."""
    import yaml

    try:
        node = yaml.safe_load(printed)
    except yaml.YAMLError:
        return ""
    if not isinstance(node, dict) or "model" not in node or "objective" not in node:
        return ""
    try:
        from ifforge.train.run import Plan

        plan = Plan(OmegaConf.create({k: node[k] for k in ("model", "objective", "seed") if k in node}))
    except Exception as e:  # never spoil --cfg: say why the arguments are not shown
        return f"# trainer arguments: not resolved here ({type(e).__name__}: {str(e)[:200]})\n"
    lines = ["# trainer arguments the train stage would use here (model row < objective < objective.trainer):"]
    lines += [f"#   {k}: {v}" for k, v in sorted(plan.trainer_args.items())]
    if plan.global_batch is not None:
        lines.append(f"#   ({plan.global_batch.describe()})")
    return "\n".join(lines) + "\n"


def main() -> None:
    _scrub_log_records()
    argv = sys.argv[1:]
    found = argv_credentials(argv)
    if found:  # before Hydra writes the overrides into the run directory
        print(f"ifforge: error: {refusal(found)}", file=sys.stderr)
        sys.exit(2)
    if any(a in ("--help", "-h") for a in argv):
        from ifforge.cli_help import render_help

        try:
            text = render_help(CONF_DIR, argv)
        except UserError as e:
            print(f"ifforge: error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        if text is not None:  # the help prints the composed config: never a secret
            sys.stdout.write(scrub_text(text))
            return
    if any(a in ("--cfg", "-c", "--info", "-i", "--help", "-h") or a.startswith("--cfg=") for a in argv):
        out = StringIO()
        try:
            with redirect_stdout(out):
                _app()
        finally:  # --cfg job (and --help) print the composed config: never a secret
            sys.stdout.write(scrub_text(out.getvalue()))
        if any(a in ("--cfg", "-c") for a in argv):
            sys.stdout.write(_trainer_arguments(out.getvalue()))
        return
    _app()


if __name__ == "__main__":
    main()
