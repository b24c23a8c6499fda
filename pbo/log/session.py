"""The log's part in `python -m pbo.run`: which settings a resumed run takes, and which file a run writes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Mapping

from pbo.log.resume import ResumeState, load_resume, resume_config
from pbo.log.storage import LogError
from pbo.log.writer import RunLog, default_path
from pbo.space import Space


def resume_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], ResumeState | None]:
    """The settings of the run: with `resume`, the logged run's own updated by those given again (which may
    not change what the optimizer replays: see FIXED_KEYS)."""
    path = values.get("resume")
    if not path:
        return dict(values), None
    out = values.get("out")
    if out and Path(out).resolve() != Path(path).resolve():
        raise LogError(f"--out {out} and --resume {path} name different logs: a resumed run continues its own")
    state = load_resume(path)
    return {**resume_config(state, values), "out": str(path)}, state


def open_log(config: dict[str, Any], space: Space, n_workers: int, state: ResumeState | None,
             start_time: float | None = None, study: Mapping[str, Any] | None = None) -> RunLog | None:
    """The log the run writes: the resumed one, `out`, or a new file under runs/ (simulated runs write none
    unless `out` is given, and skip the fsync: nothing there is worth a disk wait). Sets `config["out"]` to the
    file, so the logged settings name it. `start_time` is the Unix time the scheduler's clock counts from;
    `study` the attributes readers take as they are (`pbo.study.study_attributes`)."""
    durable = config.get("simulate") is None
    if state is not None:
        changes = {key: value for key, value in config.items() if key != "resume" and state.settings.get(key) != value}
        return RunLog.reopen(state.path, n_workers=n_workers, changes=changes, session_start=start_time,
                             durable=durable, study=study)
    if config.get("out") is None:
        if config.get("simulate") is not None:
            return None
        config["out"] = str(_unused(default_path(config["algorithm"], config["objective"])))
        make_folder = True
    else:
        make_folder = False
    return RunLog.create(config["out"], config=config, space=space, algorithm=config["algorithm"],
                         seed=config["seed"], n_workers=n_workers, overwrite=config.get("overwrite", False),
                         make_folder=make_folder, start_time=start_time, durable=durable, study=study)


def _unused(path: Path) -> Path:
    """`path`, or `path` with -2, -3, ... when runs of the same study started in the same second."""
    numbered = (path.with_name(f"{path.stem}-{n}{path.suffix}") for n in itertools.count(2))
    return next(p for p in itertools.chain([path], numbered) if not p.exists())
