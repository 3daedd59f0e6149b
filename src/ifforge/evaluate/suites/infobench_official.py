"""InFoBench judged by its own `evaluation.py` (protocol: reference).

`run_evaluation` of qinyiwei/InfoBench at a pinned commit (ifforge.evaluate.reference) runs as written, one item
per thread: its fixed system message, one multi-turn conversation per item (the input and the generated text,
then one question per turn), its reading of the answers (starts with yes/no, else contains YES/NO alone), and its
early stop (an unreadable answer is recorded as None, read as NO, and the item's later questions are not asked).
Its client is a stand-in that sends each turn through ifforge's judge: the turns that the threads ask at the same
moment (question k of every item) go out as one batch, so a local judge runs batched and an API judge concurrently.
Where the official code retries a failed call forever, here a failed call (accepted under the judge's
`max_failed_fraction`) leaves its item out, counted; past the tolerance the stage stops.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

from ifforge.evaluate.reference import load_functions, module_constants, reference_file

Batch = Callable[[List[List[Dict[str, str]]], float], List[Optional[str]]]  # conversations -> answers (None: failed)
_FLUSH_AFTER = 0.05  # seconds a waiting turn gives the other threads to join its batch


class _Failed(BaseException):
    """A judge call that failed: ends that item's run_evaluation (whose retry loop catches only Exception)."""


class LockstepClient:
    """What run_evaluation uses of an OpenAI client (`chat.completions.create`), batching concurrent calls.

    `active` worker threads each run items one after another; a batch goes out when every active worker is
    waiting for an answer (or after a short wait, for a worker busy between items). One batch at a time, sent
    without holding the lock. Once the judge stops the stage, nothing more is sent."""

    def __init__(self, batch: Batch, workers: int):
        self.batch = batch
        self.cond = threading.Condition()
        self.pending: List[Dict[str, Any]] = []
        self.active = workers  # worker threads that may still ask
        self.flushing = False
        self.error: Optional[BaseException] = None  # the judge stopped the stage (failures past its tolerance)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def leave(self) -> None:
        """A worker has no items left."""
        with self.cond:
            self.active -= 1
            self.cond.notify_all()  # a waiting worker re-checks whether everyone left is waiting

    def create(self, model: str, messages: List[Dict[str, str]], temperature: float = 0) -> Any:
        slot: Dict[str, Any] = {"messages": [dict(m) for m in messages], "temperature": temperature, "done": False}
        with self.cond:
            if self.error is not None:
                raise _Failed()
            self.pending.append(slot)
            self.cond.notify_all()
            waited = False
            while not slot["done"]:
                if self.error is not None:
                    if slot in self.pending:
                        self.pending.remove(slot)
                    raise _Failed()
                if not self.flushing and self.pending and (len(self.pending) >= self.active or waited):
                    self._flush()
                    continue
                waited = not self.cond.wait(timeout=_FLUSH_AFTER)  # True when the wait timed out
        if slot["answer"] is None:
            raise _Failed()
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=slot["answer"]))])

    def _flush(self) -> None:
        """Send what is pending as one batch; called holding the lock, which is released while the judge works."""
        batch, self.pending, self.flushing = self.pending, [], True
        error: Optional[BaseException] = None
        self.cond.release()
        try:
            answers = self.batch([s["messages"] for s in batch], float(batch[0]["temperature"] or 0))
        except BaseException as e:  # the judge stopped the stage: every waiting item ends, the caller re-raises
            error, answers = e, [None] * len(batch)
        finally:
            self.cond.acquire()
        self.flushing = False
        if error is not None:
            self.error = error
        for slot, answer in zip(batch, answers):
            slot.update(done=True, answer=answer)
        self.cond.notify_all()


class OfficialInfoBench:
    def __init__(self, local_dir: Optional[str]):
        path = reference_file("InfoBench", "evaluation.py", local_dir)
        ns: Dict[str, Any] = {"json": json, "os": os, "time": time, "join": os.path.join, "exists": os.path.exists,
                              "tqdm": lambda it, **k: it, **module_constants(path, ["SYS_MSG"])}
        self.run_evaluation = load_functions(path, ["load_jsonl", "bool_ratio", "run_evaluation"], ns)["run_evaluation"]

    def judge_all(self, entries: List[Dict[str, Any]], batch: Batch, workers: int = 256) -> List[Optional[List[Any]]]:
        """`eval` (a list of True/False/None, cut at the first unreadable answer) per entry ({id, input, output,
        decomposed_questions}); None for an entry whose judge call failed."""
        workers = max(1, min(workers, len(entries)))
        client = LockstepClient(batch, workers)
        results: List[Optional[List[Any]]] = [None] * len(entries)
        todo = iter(range(len(entries)))
        take = threading.Lock()

        def one(i: int, tmp: str) -> Optional[List[Any]]:
            # One folder per item: run_evaluation names its output after the input's path and resumes from it.
            folder = os.path.join(tmp, str(i))
            os.makedirs(folder)
            in_path = os.path.join(folder, "model_output.jsonl")
            Path(in_path).write_text(json.dumps(entries[i]) + "\n", encoding="utf-8")
            try:
                out = self.run_evaluation(client, in_path, folder, "judge", 0)
            except _Failed:
                return None
            return json.loads(Path(out).read_text(encoding="utf-8").splitlines()[0])["eval"]

        def worker(tmp: str) -> None:
            try:
                while client.error is None:
                    with take:
                        i = next(todo, None)
                    if i is None:
                        return
                    results[i] = one(i, tmp)
            finally:
                client.leave()

        with tempfile.TemporaryDirectory(prefix="infobench-") as tmp, contextlib.redirect_stdout(io.StringIO()):
            threads = [threading.Thread(target=worker, args=(tmp,), daemon=True) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if client.error is not None:
            raise client.error
        return results
