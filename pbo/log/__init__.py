"""The HDF5 experiment log: written by the master, readable live, resumable after a kill.

`RunLog` writes (recorder protocol: record_submit, record_result, record_tree), `read` loads a log into
numpy arrays, `load_resume` / `resume_config` rebuild a killed run. The layout is described in layout.py
and in docs/log-format.md (the contract other tools rely on).
"""

from pbo.log.reader import RunData, read
from pbo.log.resume import FIXED_KEYS, ResumeState, load_resume, resume_config
from pbo.log.storage import LogError
from pbo.log.writer import RunLog, default_path

__all__ = ["FIXED_KEYS", "LogError", "ResumeState", "RunData", "RunLog", "default_path", "load_resume", "read",
           "resume_config"]
