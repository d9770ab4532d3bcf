"""Reads for refactor sessions: access, proposals, review state, findings and policy.

Views and consumers read through here; services (``apps.refactors.services``) write. Reads
of a proposal's diff ask git (``file_diff``); everything else reads the stored rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.refactors.models import ChangeSet, HunkDecision, RefactorPolicy, RefactorSession
from apps.workspaces.models import Membership
from apps.workspaces.selectors import membership_find
from qweb.lib.diffs import WHOLE_FILE, FileDiff, Hunk, parse_diff
from qweb.lib.gitstore import GitStore

# Files above this size are never edited, read for a prompt or highlighted.
MAX_FILE_BYTES = 2 * 1024 * 1024


def refactor_session_access(
    *, user_id: int, session_id: int
) -> tuple[RefactorSession, Membership] | None:
    """The session and the user's current membership of its workspace, or None."""
    session = RefactorSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    membership = membership_find(user_id=user_id, workspace_id=session.workspace_id)
    return None if membership is None else (session, membership)


def changesets_being_written(*, session_id: int) -> list[tuple[int, int]]:
    """``(changeset id, job id)`` of the session's proposals the model is still writing."""
    return list(
        ChangeSet.objects.filter(
            session_id=session_id, state=ChangeSet.State.GENERATING, job__isnull=False
        ).values_list("pk", "job_id")
    )


def changeset_in_session(*, session: RefactorSession, changeset_id: object) -> ChangeSet | None:
    """A proposal of ``session`` by id; None for any other id or a non-integer."""
    if not isinstance(changeset_id, int) or isinstance(changeset_id, bool):
        return None
    return session.changesets.filter(pk=changeset_id).first()


def file_text(store: GitStore, commit: str, path: str) -> str | None:
    """A file of ``commit`` as text; None when it is missing, not a file, binary or too big."""
    found = store.entry(commit, path)
    if found is None or found.type != "blob":
        return None
    blob = store.read_blob(found.sha, MAX_FILE_BYTES)
    if blob.truncated or b"\0" in blob.data[:8000]:
        return None
    return blob.data.decode("utf-8", errors="replace")


def latest_changeset(session: RefactorSession) -> ChangeSet | None:
    return session.changesets.order_by("-number").first()


def file_diff(changeset: ChangeSet, path: str, context_lines: int = 3) -> FileDiff | None:
    """git's diff of one file of the proposal against the session's base."""
    if not changeset.commit:
        return None
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None:
        return None
    store = GitStore(changeset.session.repository.store_path)
    paths = [path] if summary["old_path"] == path else [summary["old_path"], path]
    found = parse_diff(
        store.diff(
            changeset.session.base_commit,
            changeset.commit,
            paths=paths,
            context_lines=context_lines,
        )
    )
    return next((item for item in found if item.path == path), None)


def decision_map(changeset: ChangeSet, path: str | None = None) -> dict[str, dict[int, str]]:
    """Per file (or for one ``path``), each decided hunk's verdict (``WHOLE_FILE``: the file)."""
    decisions = HunkDecision.objects.filter(changeset=changeset)
    if path is not None:
        decisions = decisions.filter(path=path)
    found: dict[str, dict[int, str]] = {}
    for file, hunk, verdict in decisions.values_list("path", "hunk", "verdict"):
        found.setdefault(file, {})[hunk] = verdict
    return found


def accepted_hunks(
    changeset: ChangeSet, decisions: dict[str, dict[int, str]] | None = None
) -> dict[str, list[int] | None]:
    """Per file, the accepted hunks (None: the whole file); files with nothing accepted left out."""
    if decisions is None:
        decisions = decision_map(changeset)
    accepted: dict[str, list[int] | None] = {}
    for item in changeset.files:
        verdicts = decisions.get(item["path"], {})
        if verdicts.get(WHOLE_FILE) == HunkDecision.Verdict.ACCEPT:
            accepted[item["path"]] = None
        elif verdicts.get(WHOLE_FILE) is None:
            accept = HunkDecision.Verdict.ACCEPT
            hunks = sorted(h for h, v in verdicts.items() if v == accept and h != WHOLE_FILE)
            per_hunk = item["status"] == "modified" and not item["binary"]
            if hunks:
                whole = not per_hunk or len(hunks) == item["hunks"]
                accepted[item["path"]] = None if whole else hunks
    return accepted


def file_verdict(verdicts: dict[int, str], hunks: int) -> str:
    """A file's verdict for the file list: its own, or what its hunks' verdicts add up to.

    "accept"/"reject" when the file (or every hunk) has that verdict, "partial" when some
    hunks are decided, "" when none is.
    """
    whole = verdicts.get(WHOLE_FILE)
    if whole:
        return whole
    per_hunk = [verdict for hunk, verdict in verdicts.items() if hunk != WHOLE_FILE]
    for verdict in (HunkDecision.Verdict.ACCEPT, HunkDecision.Verdict.REJECT):
        if hunks and per_hunk.count(verdict) == hunks:
            return verdict.value
    return "partial" if per_hunk else ""


@dataclass(frozen=True)
class HeldFinding:
    """A high-severity finding and the hunk of the proposal's diff that holds it."""

    finding: dict[str, Any]
    hunk: Hunk | None  # None: the file as a whole (path "": the whole change)

    @property
    def path(self) -> str:
        return str(self.finding["path"])

    @property
    def where(self) -> str:
        """Where a reviewer finds it: "hunk 2 of app/views.py, lines 40–52"."""
        if not self.path:
            return "the change as a whole"
        if self.hunk is None:
            return f"every hunk of {self.path}"
        first, last = self.hunk.new_start, self.hunk.new_start + self.hunk.new_length - 1
        lines = f"line {first}" if first == last else f"lines {first}–{last}"
        return f"hunk {self.hunk.index + 1} of {self.path}, {lines}"

    def applied_with(self, accepted: dict[str, list[int] | None]) -> bool:
        """Whether applying these accepted hunks (``accepted_hunks``) applies the finding."""
        if not self.path:
            return bool(accepted)
        if self.path not in accepted:
            return False
        kept = accepted[self.path]
        return kept is None or self.hunk is None or self.hunk.index in kept

    def __str__(self) -> str:
        finding = self.finding
        line = f"at line {finding['line']}" if finding["line"] else "on the whole file"
        return f"{self.where}: {finding['tool']} {finding['rule']} {line}"


def hunk_holding(diff: FileDiff | None, line: int) -> Hunk | None:
    """The hunk whose new-side lines hold ``line``; None for line 0 or outside every hunk."""
    if diff is None or line <= 0:
        return None
    return next(
        (hunk for hunk in diff.hunks if hunk.new_start <= line < hunk.new_start + hunk.new_length),
        None,
    )


def high_findings_held(changeset: ChangeSet) -> list[HeldFinding]:
    """The proposal's high-severity findings, each with the hunk that holds it.

    The scan reads only the proposed side, so every finding is on a new-side line (removed
    lines hold no new code) and belongs to the hunk whose new lines hold it, in git's diff
    with the context the reviewers' verdicts refer to. A finding about the whole file (line
    0: a symlink, a submodule, a mode or path rule) belongs to every hunk of the file, since
    any accepted hunk carries the file's header; so does one on a line outside every hunk.
    """
    high = [finding for finding in changeset.findings if finding["severity"] == "high"]
    diffs = {
        path: file_diff(changeset, path)
        for path in sorted({finding["path"] for finding in high if finding["path"]})
    }
    return [
        HeldFinding(finding=finding, hunk=hunk_holding(diffs.get(finding["path"]), finding["line"]))
        for finding in high
    ]


def policy_for(workspace_id: int) -> RefactorPolicy:
    """The workspace's policy; the defaults (unsaved) until an admin saves one."""
    return RefactorPolicy.objects.filter(workspace_id=workspace_id).first() or RefactorPolicy(
        workspace_id=workspace_id
    )


@dataclass(frozen=True)
class ReviewState:
    """What a session's review page shows of one proposal (``current``) and the session."""

    changesets: list[ChangeSet]
    current: ChangeSet | None
    # The proposal's files as stored, each with its "verdict" and its "findings".
    files: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    # Findings about the change as a whole (no file).
    general_findings: list[dict[str, Any]] = field(default_factory=list)
    held_findings: list[HeldFinding] = field(default_factory=list)
    decisions: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def is_latest(self) -> bool:
        return self.current is not None and self.current.pk == self.changesets[-1].pk

    @property
    def high_findings(self) -> int:
        return len(self.held_findings)

    @property
    def success_rate(self) -> float | None:
        """The share of the session's edit blocks that applied, over every proposal."""
        applied = sum(changeset.blocks_applied for changeset in self.changesets)
        blocks = applied + sum(changeset.blocks_refused for changeset in self.changesets)
        return applied / blocks if blocks else None


def review_state(*, session: RefactorSession, proposal: str = "") -> ReviewState:
    """The review of proposal number ``proposal`` of the session (default: the latest)."""
    changesets = list(session.changesets.select_related("job").order_by("number"))
    current = next((c for c in changesets if str(c.number) == proposal), None) or (
        changesets[-1] if changesets else None
    )
    if current is None:
        return ReviewState(changesets=changesets, current=None)
    decisions = decision_map(current)
    findings: dict[str, list[dict[str, Any]]] = {}
    for finding in current.findings:
        findings.setdefault(finding["path"], []).append(finding)
    files = [
        {
            **item,
            "verdict": file_verdict(decisions.get(item["path"], {}), item["hunks"]),
            "findings": findings.get(item["path"], []),
        }
        for item in current.files
    ]
    return ReviewState(
        changesets=changesets,
        current=current,
        files=files,
        refused=[result for result in current.results if result["status"] == "refused"],
        general_findings=findings.get("", []),
        held_findings=high_findings_held(current),
        decisions=decisions,
    )
