"""Exit codes of ``prefect-mlops`` (documented in its ``--help`` and the README)."""

from __future__ import annotations

OK = 0
#: A library error (bad data, bad config, registry failure, unreachable Prefect API).
ERROR = 1
#: Click's usage error (unknown option, missing argument).
USAGE = 2
#: ``train``: registered but not blessed (champion unchanged); ``deploy``: rolled back.
NOT_BLESSED = 3
#: ``train`` / ``demo``: data and config are those of the last registered version: nothing new
#: was trained or registered.
UNCHANGED = 4
#: ``monitor``: the window found something to act on (skew, drift, quality lost, failing).
ALARM = 5

SUMMARY = (
    "Exit codes: 0 success (for `train`: blessed), 1 error (bad data, bad config, registry "
    "failure, Prefect API not answering), 2 usage error, 3 trained but not blessed (`deploy`: "
    "rolled back), 4 unchanged (`train`/`demo`: same data and config as the last version, "
    "nothing registered), 5 `monitor` found skew, drift, lost quality or a failing version."
)
