"""Reads for refactor sessions: access, proposals, review state, findings and policy.

Views and consumers read through here; services (``apps.refactors.services``) write. Reads
of a proposal's diff ask git (``file_diff``); everything else reads the stored rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from apps.refactors.models import (
    ChangeSet,
    HunkDecision,
    ProposalReview,
    RefactorPolicy,
    RefactorSession,
    ReviewComment,
    Suggestion,
)
from apps.workspaces.models import Membership
from apps.workspaces.roles import Action, Role, can
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


def latest_proposal_state(*, session_id: int) -> dict[str, int | str] | None:
    """The session's latest proposal as a page that just (re)joined compares it with."""
    found = (
        ChangeSet.objects.filter(session_id=session_id)
        .order_by("-number")
        .values("pk", "number", "state", "decisions_version")
        .first()
    )
    if found is None:
        return None
    return {
        "changeset_id": found["pk"],
        "number": found["number"],
        "state": found["state"],
        "decisions_version": found["decisions_version"],
    }


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


def decisions_attributed(
    changeset: ChangeSet, path: str | None = None
) -> dict[str, dict[int, HunkDecision]]:
    """Like ``decision_map``, with each decision's row (who decided it, when) as the value."""
    decisions = HunkDecision.objects.filter(changeset=changeset).select_related("decided_by")
    if path is not None:
        decisions = decisions.filter(path=path)
    found: dict[str, dict[int, HunkDecision]] = {}
    for decision in decisions:
        found.setdefault(decision.path, {})[decision.hunk] = decision
    return found


def decision_fields(decision: HunkDecision | None) -> dict[str, Any]:
    """Who made a decision and when, as events and pages carry it (empty: undecided)."""
    if decision is None:
        return {"verdict": "", "by": "", "by_id": None, "at": ""}
    user = decision.decided_by
    return {
        "verdict": decision.verdict,
        "by": user.display_name if user else "Former member",
        "by_id": decision.decided_by_id,
        "at": decision.decided_at.isoformat(),
    }


def decision_seen(rows: dict[int, HunkDecision], hunk: int, hunks: int) -> dict[str, Any]:
    """What a reviewer's page shows for one hunk (or, ``hunk`` -1, the file) of these rows.

    A hunk shows the file's verdict where the file has one, else its own; a file shows what
    ``file_verdict`` adds up to ("partial": some hunks decided, by whoever decided them).
    """
    whole = rows.get(WHOLE_FILE)
    if hunk != WHOLE_FILE and whole is None:
        return {"hunk": hunk, **decision_fields(rows.get(hunk))}
    if whole is not None:
        return {"hunk": WHOLE_FILE, **decision_fields(whole)}
    verdict = file_verdict({h: d.verdict for h, d in rows.items()}, hunks)
    latest = max(rows.values(), key=lambda d: d.decided_at, default=None)
    return {"hunk": WHOLE_FILE, **decision_fields(latest), "verdict": verdict}


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
class ReviewEntry:
    """A reviewer's current review of a proposal, and whether the policy counts it."""

    review: ProposalReview
    # Why it does not count towards the approvals ("" when it does).
    not_counted: str = ""

    @property
    def counts(self) -> bool:
        return not self.not_counted


@dataclass(frozen=True)
class ApprovalState:
    """Where a proposal stands against the workspace's approval rules."""

    required: int
    reviews: list[ReviewEntry] = field(default_factory=list)

    @property
    def approvals(self) -> int:
        approve = ProposalReview.State.APPROVE
        return sum(1 for e in self.reviews if e.counts and e.review.state == approve)

    @property
    def changes_requested_by(self) -> list[str]:
        """Reviewers who may approve and asked for changes: they block until they approve."""
        wanted = ProposalReview.State.REQUEST_CHANGES
        return [
            e.review.reviewer.display_name
            for e in self.reviews
            if e.review.state == wanted and e.not_counted != NOT_AN_APPROVER
        ]

    @property
    def refusal(self) -> str:
        """Why the proposal cannot be applied yet ("" when the approvals allow it)."""
        reasons = []
        if self.approvals < self.required:
            plural = "s" if self.required != 1 else ""
            reasons.append(f"needs {self.required} approval{plural}, has {self.approvals}")
        if self.changes_requested_by:
            reasons.append("changes requested by " + ", ".join(self.changes_requested_by))
        return "; ".join(reasons)

    @property
    def met(self) -> bool:
        return not self.refusal

    def as_event(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "approvals": self.approvals,
            "changes_requested_by": self.changes_requested_by,
            "refusal": self.refusal,
        }


NOT_AN_APPROVER = "not an approver"
OWN_PROPOSAL = "own proposal"


def approver_role(policy: RefactorPolicy) -> Role:
    """The least role that may approve: the policy's, and never below a member's."""
    role = Role(policy.approver_role)
    return role if can(role, Action.CONTRIBUTE) else Role.MEMBER


def may_approve(membership: Membership, policy: RefactorPolicy) -> bool:
    return Role(membership.role).at_least(approver_role(policy))


def proposal_authors(changeset: ChangeSet) -> set[int]:
    """Whose approval is their own: the session's requester and, for a hand edit, its editor."""
    authors = {changeset.session.created_by_id}
    if changeset.kind == ChangeSet.Kind.MANUAL:
        authors.add(changeset.created_by_id)
    return {user_id for user_id in authors if user_id is not None}


def _entry(
    review: ProposalReview, roles: dict[int, str], authors: set[int], policy: RefactorPolicy
) -> ReviewEntry:
    role = roles.get(review.reviewer_id)
    if role is None or not Role(role).at_least(approver_role(policy)):
        return ReviewEntry(review=review, not_counted=NOT_AN_APPROVER)
    if review.reviewer_id in authors and not policy.requester_approval_counts:
        return ReviewEntry(review=review, not_counted=OWN_PROPOSAL)
    return ReviewEntry(review=review)


def _roles(workspace_id: int, user_ids: set[int]) -> dict[int, str]:
    """The current roles of these users in the workspace (active users only)."""
    return dict(
        Membership.objects.filter(
            workspace_id=workspace_id, user_id__in=user_ids, user__is_active=True
        ).values_list("user_id", "role")
    )


def approval_state(changeset: ChangeSet, policy: RefactorPolicy | None = None) -> ApprovalState:
    """The proposal's current reviews, each counted (or not) under the workspace's policy.

    Roles are read as they are now: a reviewer who left or lost the role no longer counts.
    """
    session = changeset.session
    policy = policy or policy_for(session.workspace_id)
    reviews = list(changeset.reviews.select_related("reviewer"))
    roles = _roles(session.workspace_id, {review.reviewer_id for review in reviews})
    authors = proposal_authors(changeset)
    return ApprovalState(
        required=policy.required_approvals,
        reviews=[_entry(review, roles, authors, policy) for review in reviews],
    )


def approval_states(sessions: list[RefactorSession]) -> dict[int, ApprovalState]:
    """Each session's latest proposal against its workspace's policy (for the session list)."""
    latest: dict[int, ChangeSet] = {}
    # Only what counting needs: a proposal's answer, files and findings can be large.
    changesets = (
        ChangeSet.objects.filter(session__in=sessions)
        .select_related("session")
        .only("number", "kind", "created_by_id", "session__workspace_id", "session__created_by_id")
    )
    for changeset in changesets.order_by("session_id", "number"):
        latest[changeset.session_id] = changeset
    reviews: dict[int, list[ProposalReview]] = {}
    for review in ProposalReview.objects.filter(changeset__in=list(latest.values())).select_related(
        "reviewer"
    ):
        reviews.setdefault(review.changeset_id, []).append(review)
    states: dict[int, ApprovalState] = {}
    for workspace_id in {session.workspace_id for session in sessions}:
        policy = policy_for(workspace_id)
        ours = [c for c in latest.values() if c.session.workspace_id == workspace_id]
        roles = _roles(workspace_id, {r.reviewer_id for c in ours for r in reviews.get(c.pk, [])})
        for changeset in ours:
            authors = proposal_authors(changeset)
            states[changeset.session_id] = ApprovalState(
                required=policy.required_approvals,
                reviews=[_entry(r, roles, authors, policy) for r in reviews.get(changeset.pk, [])],
            )
    return states


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
    approval: ApprovalState | None = None

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
    rows = decisions_attributed(current)
    decisions = {path: {h: d.verdict for h, d in by_hunk.items()} for path, by_hunk in rows.items()}
    findings: dict[str, list[dict[str, Any]]] = {}
    for finding in current.findings:
        findings.setdefault(finding["path"], []).append(finding)
    files = [
        {
            **item,
            "verdict": file_verdict(decisions.get(item["path"], {}), item["hunks"]),
            "findings": findings.get(item["path"], []),
            # Who decided the file as a whole, and when (empty without such a verdict).
            "decided": decision_fields(rows.get(item["path"], {}).get(WHOLE_FILE)),
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
        approval=approval_state(current),
    )


# Threads and suggestions ------------------------------------------------------------------


def thread_in_session(*, session_id: int, thread_id: int) -> ReviewComment | None:
    """A thread (its first comment) of one of the session's proposals, by id."""
    return (
        ReviewComment.objects.filter(
            pk=thread_id, thread__isnull=True, changeset__session_id=session_id
        )
        .select_related("changeset")
        .first()
    )


def suggestion_in_session(*, session_id: int, suggestion_id: int) -> Suggestion | None:
    return (
        Suggestion.objects.filter(pk=suggestion_id, changeset__session_id=session_id)
        .select_related("changeset__session__repository", "author")
        .first()
    )


@dataclass
class Thread:
    """A comment thread as one proposal's page shows it.

    ``line`` is where the thread's line is in this proposal (None: the line is gone, the
    thread is outdated); ``snippet`` the line as it was where the thread was started.
    """

    root: ReviewComment
    replies: list[ReviewComment]
    line: int | None
    snippet: str = ""
    # The number of the proposal whose page shows it.
    shown_on: int = 0

    @property
    def outdated(self) -> bool:
        return self.line is None

    @property
    def carried(self) -> bool:
        """Started on an earlier proposal than the one shown, and still on its line."""
        return self.line is not None and self.root.changeset.number != self.shown_on

    @property
    def comments(self) -> list[ReviewComment]:
        return [self.root, *self.replies]


def line_moved(diff: FileDiff | None, line: int) -> int | None:
    """Where ``line`` of a diff's old side is on its new side; None when it was changed or
    removed. ``diff`` is git's, without context lines (None: the file did not change)."""
    if diff is None:
        return line
    shift = 0
    for hunk in diff.hunks:
        if hunk.old_length and hunk.old_start <= line < hunk.old_start + hunk.old_length:
            return None
        # Without context a hunk of only added lines starts at the line it follows.
        before = (
            hunk.old_start + hunk.old_length <= line if hunk.old_length else hunk.old_start < line
        )
        if before:
            shift += hunk.new_length - hunk.old_length
    return line + shift


def _line_text(text: str | None, line: int) -> str:
    lines = (text or "").splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def file_threads(changeset: ChangeSet, path: str) -> list[Thread]:
    """The threads on ``path`` a proposal's page shows: its own, and those started on the
    session's earlier proposals, each at its line as git's diff between the two proposals'
    commits moves it, or outdated (``line`` None) when that line changed or went away.

    Computed on every read: stored comments keep the line they were made on.
    """
    roots = list(
        ReviewComment.objects.filter(
            changeset__session_id=changeset.session_id,
            changeset__number__lte=changeset.number,
            path=path,
            thread__isnull=True,
        ).select_related("author", "resolved_by", "changeset")
    )
    replies: dict[int, list[ReviewComment]] = {}
    for reply in ReviewComment.objects.filter(thread__in=roots).select_related("author"):
        replies.setdefault(reply.thread_id or 0, []).append(reply)
    store = GitStore(changeset.session.repository.store_path)
    texts: dict[str, str | None] = {}
    moves: dict[int, FileDiff | None] = {}

    def text_at(commit: str) -> str | None:
        if commit not in texts:
            texts[commit] = file_text(store, commit, path) if commit else None
        return texts[commit]

    def moved(root: ReviewComment) -> int | None:
        source = root.changeset
        if source.pk == changeset.pk or root.side == ReviewComment.Side.OLD:
            # The base's lines never move between proposals of a session.
            return root.line
        if not source.commit or not changeset.commit or text_at(changeset.commit) is None:
            return None
        if source.pk not in moves:
            found = parse_diff(
                store.diff(source.commit, changeset.commit, paths=[path], context_lines=0)
            )
            moves[source.pk] = next((item for item in found if item.path == path), None)
        return line_moved(moves[source.pk], root.line)

    threads = []
    for root in roots:
        commit = (
            changeset.session.base_commit
            if root.side == ReviewComment.Side.OLD
            else root.changeset.commit
        )
        threads.append(
            Thread(
                root=root,
                replies=replies.get(root.pk, []),
                line=moved(root),
                snippet=_line_text(text_at(commit), root.line),
                shown_on=changeset.number,
            )
        )
    return threads


def file_suggestions(changeset: ChangeSet, path: str) -> list[Suggestion]:
    """The suggestions a proposal's page shows for ``path``: those made on it, and the
    session's open ones made on earlier proposals (accepting one checks it still fits)."""
    return list(
        Suggestion.objects.filter(changeset__session_id=changeset.session_id, path=path)
        .filter(
            models.Q(changeset=changeset)
            | models.Q(state=Suggestion.State.OPEN, changeset__number__lt=changeset.number)
        )
        .select_related("author", "decided_by", "result", "changeset")
    )
