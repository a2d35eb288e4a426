"""Publish the records and the built site to a git remote or to the Hugging Face Hub.

Both targets receive the same staged tree: ``submissions/`` (the validated records, in canonical
form) and the site (``leaderboard/``; at the root for a Hugging Face *space*, which serves it).
Git: a temporary clone, the two folders replaced, one commit with a deterministic message (none
when nothing changed), pushed. Hub: ``huggingface_hub.HfApi.upload_folder`` with ``$HF_TOKEN``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vpsbench
from vpsbench.errors import VpsbenchError
from vpsbench.leaderboard.build import GENERATED_FOLDERS, write_site
from vpsbench.leaderboard.store import StoredRecord, load_store
from vpsbench.records import record_to_json

RECORDS_FOLDER = "submissions"
SITE_FOLDER = "leaderboard"
HUB_PREFIX = "hf://"
HUB_REPO_TYPES = {"datasets": "dataset", "spaces": "space"}
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
COMMITTER = ("vpsbench", "vpsbench@localhost")


@dataclass(frozen=True)
class PublishResult:
    """Where the board went and whether anything changed there."""

    target: str
    changed: bool
    revision: str | None


@dataclass(frozen=True)
class HubTarget:
    """A Hugging Face Hub repository: ``hf://datasets/<owner>/<name>`` or ``hf://spaces/...``."""

    repo_type: str
    repo_id: str


def parse_hub_target(target: str) -> HubTarget:
    """Parse an ``hf://`` target; anything but datasets/spaces with owner/name is an error."""
    kind, _, repo_id = target.removeprefix(HUB_PREFIX).partition("/")
    if kind not in HUB_REPO_TYPES or not HUB_REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise VpsbenchError(
            f"--to {target!r}: expected hf://datasets/<owner>/<name> or hf://spaces/<owner>/<name>"
        )
    return HubTarget(HUB_REPO_TYPES[kind], repo_id)


def _copy_site(site: Path, destination: Path) -> None:
    """Copy a built site's regular files (symbolic links and special files are refused)."""
    if not site.is_dir():
        raise VpsbenchError(f"--site {site}: not a folder (run `vpsbench leaderboard build`)")
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if any(part == ".git" for part in relative.parts):
            continue
        if path.is_symlink():
            raise VpsbenchError(f"{path}: the site must not contain symbolic links")
        if path.is_dir():
            (destination / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination / relative)


def stage(records: Sequence[StoredRecord], site: Path | None, root: Path, site_folder: str) -> None:
    """Lay out what gets published under ``root``: records, and the given or a fresh site."""
    for stored in records:
        target = root / RECORDS_FOLDER / stored.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(record_to_json(stored.record), encoding="utf-8")
    site_root = root / site_folder if site_folder else root
    if site is None:
        write_site(records, site_root)
    else:
        _copy_site(site, site_root)


def content_digest(root: Path) -> str:
    """SHA-256 over the sorted manifest of the staged files (names the published state)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{file_digest}  {path.relative_to(root).as_posix()}\n".encode())
    return digest.hexdigest()


def commit_message(records: Sequence[StoredRecord], digest: str) -> str:
    """A message that depends only on the published content."""
    boards = {(s.record.dataset, s.record.split) for s in records}
    return (
        f"Publish vpsbench leaderboard: {len(records)} records on {len(boards)} dataset splits\n\n"
        f"Content sha256 {digest}\n"
    )


def _git(
    arguments: Sequence[str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run git without prompts, hooks or the ext transport; a failure is one line."""
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    command = [
        "git",
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.hooksPath=/dev/null",
        *arguments,
    ]
    try:
        completed = subprocess.run(
            command, cwd=cwd, env=environment, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise VpsbenchError("publishing to a git remote needs the `git` command") from None
    if check and completed.returncode != 0:
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {completed.returncode}"
        raise VpsbenchError(f"git {arguments[0]} failed: {detail}")
    return completed


def _identity(clone: Path) -> list[str]:
    """Keep the user's git identity; fall back to vpsbench's where none is configured."""
    configured = all(
        _git(["config", key], clone, check=False).stdout.strip()
        for key in ("user.name", "user.email")
    )
    if configured:
        return []
    name, email = COMMITTER
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def _check_branch(branch: str) -> str:
    """Refuse branch names git would misread (options, ``..``, lock files)."""
    if not BRANCH_NAME.fullmatch(branch) or ".." in branch or branch.endswith((".lock", "/")):
        raise VpsbenchError(f"--branch {branch!r} is not a valid branch name")
    return branch


def publish_to_git(
    records: Sequence[StoredRecord], site: Path | None, remote: str, branch: str | None
) -> PublishResult:
    """Commit the staged tree to ``branch`` of ``remote`` and push (no commit if unchanged)."""
    if not remote or remote.startswith("-"):
        raise VpsbenchError(f"--to {remote!r} is not a git remote")
    if branch is not None:
        _check_branch(branch)
    with tempfile.TemporaryDirectory(prefix="vpsbench-publish-") as folder:
        clone = Path(folder) / "clone"
        _git(["clone", "--quiet", "--no-checkout", "--", remote, str(clone)])
        if branch is None:  # the remote's default branch (git's default for an empty remote)
            branch = _check_branch(_git(["symbolic-ref", "--short", "HEAD"], clone).stdout.strip())
        heads = _git(["ls-remote", "--heads", "origin", f"refs/heads/{branch}"], clone).stdout
        exists = bool(heads.strip())
        if exists:
            _git(["checkout", "--quiet", "-B", branch, f"origin/{branch}"], clone)
        else:
            _git(["checkout", "--quiet", "--orphan", branch], clone)
        for name in (RECORDS_FOLDER, SITE_FOLDER):
            _git(["rm", "-r", "--quiet", "--ignore-unmatch", "--", name], clone)
            shutil.rmtree(clone / name, ignore_errors=True)
        staged = Path(folder) / "staged"
        stage(records, site, staged, SITE_FOLDER)
        for name in (RECORDS_FOLDER, SITE_FOLDER):
            shutil.copytree(staged / name, clone / name)
        _git(["add", "--all", "--", RECORDS_FOLDER, SITE_FOLDER], clone)
        if exists and _git(["diff", "--cached", "--quiet"], clone, check=False).returncode == 0:
            return PublishResult(remote, False, heads.split()[0])
        message = commit_message(records, content_digest(staged))
        _git([*_identity(clone), "commit", "--quiet", "-m", message], clone)
        _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], clone)
        revision = _git(["rev-parse", "HEAD"], clone).stdout.strip()
    return PublishResult(remote, True, revision)


def _hub_module() -> Any:
    """``huggingface_hub``, or one line saying how to install it."""
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError:
        raise VpsbenchError(
            "publishing to hf:// needs huggingface_hub: pip install 'vpsbench[hub]'"
        ) from None


def _hub_replaced_files(site_folder: str) -> list[str]:
    """Remote files an upload replaces wholesale (so removed records and pages disappear)."""
    folders = [RECORDS_FOLDER, site_folder] if site_folder else [RECORDS_FOLDER, *GENERATED_FOLDERS]
    return [f"{folder}/**" for folder in folders]


def publish_to_hub(
    records: Sequence[StoredRecord], site: Path | None, target: str
) -> PublishResult:
    """Upload the staged tree to a Hugging Face dataset or (static) space with ``$HF_TOKEN``."""
    hub_target = parse_hub_target(target)
    hub = _hub_module()
    site_folder = "" if hub_target.repo_type == "space" else SITE_FOLDER
    with tempfile.TemporaryDirectory(prefix="vpsbench-publish-") as folder:
        staged = Path(folder)
        stage(records, site, staged, site_folder)
        message = commit_message(records, content_digest(staged))
        title, _, description = message.partition("\n\n")
        try:
            api = hub.HfApi(
                token=os.environ.get("HF_TOKEN") or None,
                library_name="vpsbench",
                library_version=vpsbench.__version__,
            )
            extra = {"space_sdk": "static"} if hub_target.repo_type == "space" else {}
            api.create_repo(
                repo_id=hub_target.repo_id, repo_type=hub_target.repo_type, exist_ok=True, **extra
            )
            commit = api.upload_folder(
                folder_path=str(staged),
                repo_id=hub_target.repo_id,
                repo_type=hub_target.repo_type,
                commit_message=title,
                commit_description=description.strip(),
                delete_patterns=_hub_replaced_files(site_folder),
            )
        except Exception as error:  # network, auth and HTTP errors of the hub client
            detail = " ".join(str(error).split())[:300] or type(error).__name__
            raise VpsbenchError(
                f"cannot publish to the Hugging Face Hub at {target}: "
                f"{type(error).__name__}: {detail}"
            ) from None
    return PublishResult(target, True, str(getattr(commit, "oid", "")) or None)


def publish(
    target: str, store: Path, site: Path | None = None, branch: str | None = None
) -> PublishResult:
    """Publish a store's records and its site to a git remote or an ``hf://`` repository."""
    records = load_store(store)
    if target.startswith(HUB_PREFIX):
        return publish_to_hub(records, site, target)
    return publish_to_git(records, site, target, branch)
