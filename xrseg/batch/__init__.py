"""Many sessions at once: ``xrseg batch`` and :func:`run`, on this machine's cores or on a Ray cluster.

    from xrseg.batch import BatchTask, run

    report = run(["/data/sessions/*"], "/data/results", BatchTask.EVAL, workers=2)
    print(report.totals()["selection_accuracy"], [r.error for r in report.failed])

See docs/scale.md for a Ray cluster.
"""

from xrseg.batch.records import BatchTask, SessionResult, SessionStatus
from xrseg.batch.report import BatchReport, format_table
from xrseg.batch.runner import run

__all__ = ["BatchReport", "BatchTask", "SessionResult", "SessionStatus", "format_table", "run"]
