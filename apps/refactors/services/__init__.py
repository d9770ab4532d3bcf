"""Refactors: proposals from the model, review, and apply as git commits — every rule once.

Flow: ``refactor_create`` queues a proposal (a ``refactor`` generation job whose prompt
teaches the edit format); when the job ends, a ``refactor.build`` task applies the edits to
the base tree in memory (``qweb.lib.edits``: exact, then whitespace-, then
indentation-insensitive, then a bounded fuzzy match), writes the result as a commit under
``refs/qweb/changesets/<id>``, stores git's diff summary and the security scan. Reviewers
accept or reject hunks and comment; ``changeset_apply`` turns the accepted hunks into one
commit on a new branch or the base branch (a 3-way merge by git when the branch moved;
conflicts are reported and nothing is written).

The package's modules, in the order of that flow: ``proposals`` (sessions and the model's
proposals), ``build`` (edits applied, committed, diffed and scanned; hand edits), ``review``
(verdicts and comments), ``threads`` (replies, resolving, suggestions), ``approvals``
(reviews of a whole proposal), ``policy`` (what a workspace lets through) and ``apply``
(commits, merges and pushes). Reads live in
``apps.refactors.selectors``; the names callers used before the split are re-exported here.
"""

from apps.refactors.selectors import (
    MAX_FILE_BYTES,
    HeldFinding,
    accepted_hunks,
    file_diff,
    high_findings_held,
    hunk_holding,
    latest_changeset,
    policy_for,
)
from apps.refactors.services.apply import apply_push, apply_push_enqueue, changeset_apply
from apps.refactors.services.approvals import review_submit
from apps.refactors.services.build import (
    SCAN_TIMEOUT_S,
    changeset_build,
    changeset_edit_file,
    edits_apply,
    edits_preview,
)
from apps.refactors.services.common import (
    FORBIDDEN_MODES,
    NO_EDITS_MESSAGE,
    in_scope,
)
from apps.refactors.services.policy import check_approvals, policy_update
from apps.refactors.services.proposals import (
    FIX_REQUEST,
    MAX_SCOPE,
    REFACTOR_PROMPT,
    changeset_job_finished,
    changeset_stop,
    refactor_create,
    refactor_fix_failed,
    refactor_regenerate,
)
from apps.refactors.services.review import (
    UNDECIDED,
    StaleDecision,
    comment_add,
    decision_set,
    decisions_all,
)
from apps.refactors.services.threads import (
    comment_reply,
    suggestion_accept,
    suggestion_add,
    suggestion_dismiss,
    thread_reopen,
    thread_resolve,
)

__all__ = [
    "FIX_REQUEST",
    "FORBIDDEN_MODES",
    "MAX_FILE_BYTES",
    "MAX_SCOPE",
    "NO_EDITS_MESSAGE",
    "REFACTOR_PROMPT",
    "SCAN_TIMEOUT_S",
    "UNDECIDED",
    "HeldFinding",
    "StaleDecision",
    "accepted_hunks",
    "apply_push",
    "apply_push_enqueue",
    "changeset_apply",
    "changeset_build",
    "changeset_edit_file",
    "changeset_job_finished",
    "changeset_stop",
    "check_approvals",
    "comment_add",
    "comment_reply",
    "decision_set",
    "decisions_all",
    "edits_apply",
    "edits_preview",
    "file_diff",
    "high_findings_held",
    "hunk_holding",
    "in_scope",
    "latest_changeset",
    "policy_for",
    "policy_update",
    "refactor_create",
    "refactor_fix_failed",
    "refactor_regenerate",
    "review_submit",
    "suggestion_accept",
    "suggestion_add",
    "suggestion_dismiss",
    "thread_reopen",
    "thread_resolve",
]
