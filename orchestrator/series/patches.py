"""The series under test: read it (mbox, a directory of patches, a git range), apply it
onto its base in a checkout in the cache, and record what was applied.

The checkout is a clone that borrows the tree's objects (`git clone --shared`: the tree's
.git is read, never written: no worktree registered in it, no prune, no commit or ref
of ours in its object store). One per source tree, reused by every series and base of
that tree; a commit the tree gets later is there at once through the borrowing. It keeps
one build dir per arch, so going from the base to the series (or from one revision of
a series to the next) rebuilds only the files that differ.
"""
from __future__ import annotations

import dataclasses
import email
import email.header
import email.policy
import email.utils
import gzip
import pathlib
import re
import shutil
import subprocess

from .. import hosttools
from .. import cache, model
from ..errors import ExitCode, OrchestratorError
from ..kernel import treeview
from ..kernel.source import GIT_CONFIG, GIT_READ_ONLY_ENV, KernelTree, kernel_version, slug_for
from . import thread

# `git format-patch` / `b4 am` separators: "From <40 hex> Mon Sep 17 00:00:00 2001".
_MBOX_FROM = re.compile(rb"^From (\S+) .*\d{4}$", re.M)
_DIFF_PATH = re.compile(r"^(?:diff --git a/(\S+) b/(\S+)|--- a/(\S+)|\+\+\+ b/(\S+)|"
                        r"rename (?:from|to) (\S+)|copy (?:from|to) (\S+))$", re.M)


class SeriesError(OrchestratorError):
    """Bad series input (exit 2) or a series that does not apply (exit 8)."""


@dataclasses.dataclass
class Patch:
    number: int               # 1-based, in series order
    subject: str              # "[PATCH v4 2/9] tracing: ..." prefix kept as sent
    author: str
    message_id: str | None
    files: list[str]          # paths the diff touches
    patch_id: str = ""        # git patch-id --stable
    raw: bytes = b""          # the message (mbox/dir input)
    source_commit: str | None = None   # the commit (range input)
    commit: str | None = None          # the commit made from it in the worktree

    def record(self) -> model.Patch:
        """As results.json and compare.json hold it (without the message itself)."""
        return model.Patch(number=self.number, subject=self.subject, author=self.author,
                           message_id=self.message_id, patch_id=self.patch_id, files=list(self.files),
                           source_commit=self.source_commit, commit=self.commit)


@dataclasses.dataclass
class Series:
    kind: str                 # mbox | thread (b4 read it) | directory | range
    spec: str                 # what the user gave
    patches: list[Patch]
    cover_subject: str | None = None
    base_rev: str | None = None   # from a range "base..tip"
    cover_message_id: str | None = None
    named_base: str | None = None     # base-commit: of git format-patch --base / b4
    mail_from: str | None = None      # who sent the series (its cover, else patch 1)
    mail_cc: list[str] = dataclasses.field(default_factory=list)   # its To: and Cc:, for a reply to all
    prerequisites: list[str] = dataclasses.field(default_factory=list)   # prerequisite-patch-id:s

    @property
    def title(self) -> str:
        if self.cover_subject:
            return self.cover_subject
        return self.patches[0].subject if len(self.patches) == 1 else \
            f"{model.bare_subject(self.patches[0].subject)} (+{len(self.patches) - 1} more)"

    def touched_files(self) -> list[str]:
        return sorted({f for p in self.patches for f in p.files})


@dataclasses.dataclass
class AppliedSeries:
    series: Series
    worktree: pathlib.Path
    base_commit: str
    tip_commit: str

    def info(self, each_patch: model.EachPatch | None = None,
             checkpatch: list[model.PatchCheck] = ()) -> model.SeriesInfo:
        """The series as a run and its comparison record it."""
        s = self.series
        return model.SeriesInfo(
            kind=s.kind, spec=s.spec, title=s.title, cover_subject=s.cover_subject,
            cover_message_id=s.cover_message_id, named_base=s.named_base, mail_from=s.mail_from,
            mail_cc=list(s.mail_cc), prerequisite_patch_ids=list(s.prerequisites),
            base_commit=self.base_commit, tip_commit=self.tip_commit, worktree=str(self.worktree),
            patches=[p.record() for p in s.patches], each_patch=each_patch, checkpatch=list(checkpatch))


def _git(path: pathlib.Path, *args: str, input: bytes | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    out = hosttools.run_tree(["git", "-C", str(path), *GIT_CONFIG, *args], input=input,
                             capture_output=True, env=GIT_READ_ONLY_ENV)
    if check and out.returncode != 0:
        raise OrchestratorError(f"git {' '.join(args)} failed in {path}: "
                                f"{out.stderr.decode(errors='replace').strip()[:300]}",
                                ExitCode.INFRA_ERROR)
    return out


def _text(out: subprocess.CompletedProcess) -> str:
    return out.stdout.decode(errors="replace").strip()


# -- reading -------------------------------------------------------------------------

def _header(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    return " ".join(str(email.header.make_header(email.header.decode_header(str(value)))).split())


def _header_paths(body: str) -> list[str]:
    """Every path the diff's header lines name, read plainly (a first cut: no quoting)."""
    files: list[str] = []
    for m in _DIFF_PATH.finditer(body):
        for path in m.groups():
            if path and path != "/dev/null" and path not in files:
                files.append(path)
    return files


def _diff_files(body: str) -> list[str]:
    """The paths a message's diff touches, as git reads them (`git apply --numstat -z`:
    quoted names, tabs, spaces, renames); the header lines themselves when git cannot
    parse the diff (git am then refuses it with its own message)."""
    out = hosttools.run_tree(["git", "apply", "--numstat", "-z", "-"], input=body.encode(errors="surrogateescape"),
                             capture_output=True, timeout=60)
    files: list[str] = []
    if out.returncode == 0 and out.stdout:
        fields = out.stdout.decode(errors="replace").split("\0")
        i = 0
        while i < len(fields) and fields[i]:
            path = fields[i].split("\t", 2)[2]
            if path:                     # "added<TAB>deleted<TAB>path"
                names = [path]
                i += 1
            else:                        # a rename or copy: "added<TAB>deleted<TAB>", old, new
                names = fields[i + 1:i + 3]
                i += 3
            files += [n for n in names if n and n not in files]
        return files
    return _header_paths(body)


def _check_paths(files: list[str], where: str) -> None:
    """A path out of the tree, or into a repository's own .git, is no file of a kernel tree:
    said here, before git am (whose refusal of a .git path would read like a conflict)."""
    for f in files:
        parts = f.split("/")
        if f.startswith("/") or ".." in parts:
            raise SeriesError(f"{where} touches '{f}', a path outside the kernel tree; "
                              "fix the patch (paths are relative to the tree's top).")
        if ".git" in parts:
            raise SeriesError(f"{where} touches '{f}', a file of a git repository's own .git, not of the "
                              "kernel tree; fix or drop that patch.")


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox as `git format-patch --stdout` and `b4 am` write it; a file
    with no "From " separator is one message (a single mail saved as a file)."""
    starts = [m.start() for m in _MBOX_FROM.finditer(data)]
    if not starts:
        return [data] if data.strip() else []
    if data[:starts[0]].strip():
        starts.insert(0, 0)
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def _parse_message(raw: bytes, where: str) -> tuple[Patch | None, str, str | None]:
    """(the patch, or None for a message with no diff, such as a cover letter; its subject;
    its Message-ID)."""
    body_start = raw.find(b"\n") + 1 if raw.startswith(b"From ") else 0
    msg = email.message_from_bytes(raw[body_start:], policy=email.policy.compat32)
    subject = _header(msg, "Subject")
    payload = msg.get_payload(decode=True) if not msg.is_multipart() else b""
    body = (payload or b"").decode(errors="replace")
    files = _diff_files(body)
    mid = _header(msg, "Message-ID").strip("<> ") or None
    if not files:
        return None, subject, mid
    if not subject:
        raise SeriesError(f"{where} has a diff but no Subject: header; give patches as "
                          "`git format-patch` or `b4 am` writes them.")
    # Both readings: a header line git does not take its name from is still refused.
    _check_paths(files + [f for f in _header_paths(body) if f not in files], where)
    return Patch(0, subject, _header(msg, "From"), mid, files, raw=raw), subject, mid


def _load_messages(blobs: list[tuple[str, bytes]], kind: str, spec: str) -> Series:
    patches: list[Patch] = []
    cover = cover_mid = None
    for where, raw in blobs:
        patch, subject, mid = _parse_message(raw, where)
        if patch is None:
            if re.search(r"\b0+/\d+\]", subject):
                cover, cover_mid = subject, mid
                continue
            raise SeriesError(f"{where} ('{subject or 'no subject'}') holds no diff and is no "
                              "cover letter; give patches as `git format-patch` or `b4 am` writes them.")
        patch.number = len(patches) + 1
        patches.append(patch)
    if not patches:
        raise SeriesError(f"The series {spec} holds no patch (no message with a diff); give an mbox "
                          "from `b4 am` / `git format-patch --stdout`, a directory of *.patch files, "
                          "or a git range base..tip.")
    series = Series(kind, spec, patches, cover, cover_message_id=cover_mid)
    _read_base(series, [raw for _, raw in blobs])
    _read_recipients(series, blobs[0][1])
    return series


def _read_recipients(series: Series, raw: bytes) -> None:
    """From:, To: and Cc: of the series' first mail (its cover letter when it has one): whom
    a reply goes to. Each address parsed and written again, so no header line of the
    series' own can ride along into the reply."""
    body_start = raw.find(b"\n") + 1 if raw.startswith(b"From ") else 0
    msg = email.message_from_bytes(raw[body_start:], policy=email.policy.compat32)

    def addresses(*names: str) -> list[str]:
        pairs = email.utils.getaddresses([_header(msg, n) for n in names if msg.get(n)])
        return [email.utils.formataddr((" ".join(name.split()), addr)) for name, addr in pairs
                if addr and "@" in addr and not any(c in name + addr for c in "\r\n")]
    sender = addresses("From")
    series.mail_from = sender[0] if sender else None
    series.mail_cc = [a for a in dict.fromkeys(addresses("To", "Cc")) if a != series.mail_from]


_BASE_COMMIT = re.compile(rb"^base-commit: ([0-9a-f]{7,40})\s*$", re.M)
_PREREQUISITE = re.compile(rb"^prerequisite-patch-id: ([0-9a-f]{40})\s*$", re.M)


def _read_base(series: Series, messages: list[bytes]) -> None:
    """base-commit: and prerequisite-patch-id: lines (git format-patch --base, b4 am), from
    the cover letter or the patches, whichever has them first."""
    for raw in messages:
        m = _BASE_COMMIT.search(raw)
        if m and series.named_base is None:
            series.named_base = m.group(1).decode()
            series.prerequisites = [p.decode() for p in _PREREQUISITE.findall(raw)]


def _read_cover_file(series: Series, mbox: pathlib.Path) -> None:
    """`b4 am` writes the cover letter beside the mbox as <name>.cover: the series' subject,
    Message-ID (what a reply answers) and base, when the mbox has no cover of its own."""
    cover = mbox.with_suffix(".cover")
    if series.cover_subject is not None or not cover.is_file():
        return
    raw = cover.read_bytes()
    series.cover_subject, series.cover_message_id = thread.cover_headers(raw)
    _read_recipients(series, raw)
    if series.named_base is None:
        _read_base(series, [raw])


# What a series file is called (git format-patch, b4 am, lore's t.mbox.gz, a saved mail).
SERIES_FILE_SUFFIXES = (".mbx", ".mbox", ".patch", ".diff", ".eml", ".gz", ".txt")


def check_spec(spec: str) -> None:
    """A series named by a path that is not there is refused before any work: not taken
    for a branch name after the kernel tree is fetched and built. A path is what starts
    like one or is named like a series file; a branch (for-next/tracing) is neither."""
    path = pathlib.Path(spec).expanduser()
    if path.exists() or thread.message_id_of(spec) is not None:
        return
    if spec.startswith(("/", "~", "./", "../")) or "/../" in spec or path.suffix.lower() in SERIES_FILE_SUFFIXES:
        raise SeriesError(f"The series file {path} does not exist; check the path (SERIES= takes an mbox or a "
                          "directory of patches, a Message-ID or lore link, or a git range base..tip).",
                          ExitCode.BAD_INPUT)


def load(spec: str, tree_path: pathlib.Path | None, base: str | None = None) -> Series:
    """An mbox file (a series, or a whole thread from the list), a directory of *.patch
    files, a Message-ID or lore link (fetched with b4), or a git range/branch of the tree."""
    path = pathlib.Path(spec).expanduser()
    if path.is_file():
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":   # lore's t.mbox.gz as downloaded
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise SeriesError(f"The series file {path} looks gzip-compressed but does not unpack ({exc}); "
                                  "download it again.") from exc
        msgs = split_mbox(data)
        if not msgs:
            raise SeriesError(f"The series file {path} is empty; give an mbox from `b4 am` or "
                              "`git format-patch --stdout`.")
        blobs = [(f"message {i} of {path.name}", m) for i, m in enumerate(msgs, 1)]
        if thread.is_thread([(subject, patch is not None) for patch, subject, _ in
                             (_parse_message(raw, where) for where, raw in blobs)]):
            return _load_thread(str(path), path, None)
        series = _load_messages(blobs, "mbox", str(path))
        _read_cover_file(series, path)
        return series
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".patch", ".diff", ".eml", ".mbx"))
        if not files:
            raise SeriesError(f"The series directory {path} has no *.patch files; put the output of "
                              "`git format-patch` there, or give an mbox file.")
        blobs = [(f.name, m) for f in files for m in split_mbox(f.read_bytes())]
        return _load_messages(blobs, "directory", str(path))
    msgid = thread.message_id_of(spec)
    if msgid is not None:
        return _load_thread(spec, None, msgid)
    return _load_range(spec, tree_path, base)


def _load_thread(spec: str, path: pathlib.Path | None, msgid: str | None) -> Series:
    """The newest revision b4 finds in the thread, whole, with the replies' trailers."""
    ready = thread.am_ready(path, msgid)
    msgs = split_mbox(ready.mbox)
    series = _load_messages([(f"patch {i} of the thread's v{ready.revision}", m) for i, m in enumerate(msgs, 1)],
                            "thread", spec)
    total, missing = thread.missing_patches([p.subject for p in series.patches])
    if missing:
        names = ", ".join(f"{n}/{total}" for n in missing)
        raise SeriesError(f"The thread {spec} lacks patch {names} of its v{ready.revision} (b4 found "
                          f"{len(series.patches)} of {total}); download the whole thread (lore's t.mbox.gz "
                          "of the cover letter) or add the missing mail to the mbox.")
    if ready.cover is not None:
        series.cover_subject, series.cover_message_id = thread.cover_headers(ready.cover)
        _read_recipients(series, ready.cover)
        if series.named_base is None:
            _read_base(series, [ready.cover])
    return series


def _load_range(spec: str, tree_path: pathlib.Path | None, base: str | None) -> Series:
    if tree_path is None or not (tree_path / ".git").exists():
        raise SeriesError(f"The series '{spec}' is no file or directory, and a git range needs "
                          "a git tree (KERNEL=); give an mbox, a directory of patches, or base..tip.")
    if ".." in spec:
        base_rev, tip = spec.split("..", 1)
    elif base:
        base_rev, tip = base, spec
    else:
        raise SeriesError(f"The series '{spec}' is a branch or commit with no base; write it as "
                          "base..tip or give BASE= (--base).")
    for rev in (base_rev, tip):
        if _git(tree_path, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).returncode:
            raise SeriesError(f"'{rev}' is not a commit in {tree_path}; check the range "
                              "(git log --oneline base..tip).")
    commits = _text(_git(tree_path, "rev-list", "--reverse", "--no-merges", f"{base_rev}..{tip}")).split()
    if not commits:
        raise SeriesError(f"The range {base_rev}..{tip} holds no commits; is the base right?")
    patches = []
    for n, c in enumerate(commits, 1):
        subject, author = _text(_git(tree_path, "log", "-1", "--format=%s%x00%an <%ae>", c)).split("\0")
        body = _text(_git(tree_path, "log", "-1", "--format=%b", c))
        link = re.search(r"^Link: https?://\S+/r/(\S+?)/?$", body, re.M) or \
            re.search(r"^Message-ID: <?(\S+?)>?$", body, re.M)
        files = _text(_git(tree_path, "diff-tree", "--no-commit-id", "--name-only", "-r", c)).split("\n")
        patches.append(Patch(n, subject, author, link.group(1) if link else None,
                             [f for f in files if f], source_commit=c))
    return Series("range", spec, patches, base_rev=base_rev)


# -- applying ------------------------------------------------------------------------

class SeriesDoesNotApply(SeriesError):
    def __init__(self, message: str, worktree: pathlib.Path, patch: Patch | None, files: list[str]):
        super().__init__(message, ExitCode.SERIES_DOES_NOT_APPLY)
        self.worktree = worktree
        self.patch = patch
        self.files = files


def worktree_for(tree: KernelTree, cache_root: pathlib.Path, arch: str) -> pathlib.Path:
    """One checkout per tree and arch: the arches of one series run side by side (a
    bisect or a base try checks out other commits), each in its own."""
    return cache_root / "worktrees" / f"{tree.slug}-{arch}"


def _drop_shared_worktree(tree: KernelTree, cache_root: pathlib.Path, say) -> None:
    """The one checkout per tree that earlier versions kept for every arch, and its build
    dirs: nothing uses them any more, and they hold gigabytes of the cache."""
    old = cache_root / "worktrees" / tree.slug
    if old.is_dir() and (old / ".git").exists():
        say(f"series: removing {old} and its build dirs (one checkout per arch now)")
        shutil.rmtree(cache_root / "build" / slug_for(old), ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def prepare_worktree(tree: KernelTree, cache_root: pathlib.Path, arch: str, commit: str,
                     say=print) -> pathlib.Path:
    """The tree's checkout for `arch` in the cache (a clone borrowing its objects), cleaned
    and checked out at `commit`."""
    _drop_shared_worktree(tree, cache_root, say)
    wt = worktree_for(tree, cache_root, arch)
    if (wt / ".git").is_file():
        # A `git worktree` of the user's repo, as earlier versions made: replaced by a clone.
        # (Its entry under the user's .git/worktrees is theirs to prune: we do not write there.)
        shutil.rmtree(wt)
    if not (wt / ".git").is_dir():
        shutil.rmtree(wt, ignore_errors=True)   # a clone cut short
        wt.parent.mkdir(parents=True, exist_ok=True)
        _git(wt.parent, "clone", "-q", "--shared", "--no-checkout", str(tree.path), str(wt))
    else:
        # A git killed mid-write (Ctrl-C, SIGTERM of a CI cancel) leaves its lock behind,
        # and every later git here would refuse. This checkout is the cache's, and the
        # caller holds worktree_lock: no other git can be working in it.
        for lock in (wt / ".git" / "index.lock", wt / ".git" / "HEAD.lock"):
            lock.unlink(missing_ok=True)
        # A failed `git am` is left for inspection; the next run starts clean.
        _git(wt, "am", "--abort", check=False)
        _git(wt, "cherry-pick", "--abort", check=False)
    _git(wt, "checkout", "-q", "-f", "--detach", commit)
    _git(wt, "reset", "-q", "--hard", commit)
    # Untracked files would survive a checkout and end up in the build; the loongarch
    # boot route's DTS is written again by guest/bootroute.py.
    _git(wt, "clean", "-q", "-f", "-d", "-x")
    return wt


def patch_ids(series: Series, repo: pathlib.Path) -> None:
    for p in series.patches:
        data = p.raw if p.raw else _git(repo, "show", "--format=", p.source_commit or "").stdout
        out = _text(_git(repo, "patch-id", "--stable", input=data))
        p.patch_id = out.split()[0] if out else ""


def load_for_tree(spec: str, tree: KernelTree, base: str | None) -> tuple[Series, str]:
    """The series and the commit it goes on, for a run on `tree` (a git tree: the series
    is applied with git am on a worktree of it)."""
    if tree.git_commit is None:
        raise OrchestratorError(f"The kernel tree {tree.path} is not a git repository; a series is "
                                "applied with git am on a worktree of it: use a git tree (KERNEL=).")
    series = load(spec, tree.path, base)
    return series, resolve_base(tree, series, base)


def resolve_base(tree: KernelTree, series: Series, base: str | None) -> str:
    """The commit the series goes on: a range's own base, else BASE=, else the base the
    series names (base-commit:), else the tree's HEAD."""
    rev = series.base_rev or base or series.named_base or "HEAD"
    out = _git(tree.path, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
    if out.returncode and rev == series.named_base and not (series.base_rev or base):
        raise SeriesError(f"The series names its base commit {rev} (base-commit:), which {tree.path} does not "
                          f"have; fetch it (git -C {tree.path} fetch <its remote> {rev}) or give BASE= a "
                          "commit of that tree.")
    if out.returncode:
        raise SeriesError(f"The base '{rev}' is not a commit in {tree.path}; give BASE= a commit, "
                          "tag or branch of that tree.")
    return _text(out)


def apply(tree: KernelTree, series: Series, base_commit: str, cache_root: pathlib.Path, arch: str,
          say=print) -> AppliedSeries:
    """Apply the series on its base in the arch's worktree; SeriesDoesNotApply names the
    patch. The caller holds worktree_lock() for as long as it builds from the worktree."""
    wt = prepare_worktree(tree, cache_root, arch, base_commit, say)
    patch_ids(series, tree.path)
    if series.kind == "range":
        _apply_range(wt, series, base_commit)
    else:
        _apply_mails(wt, series)
    tip = _text(_git(wt, "rev-parse", "HEAD"))
    return AppliedSeries(series, wt, base_commit, tip)


def worktree_lock(tree: KernelTree, cache_root: pathlib.Path, arch: str, say=print):
    """Held from checkout to the end of the run: another run on the same tree and arch
    waits instead of checking out another commit under this one's build."""
    wt = worktree_for(tree, cache_root, arch)
    return cache.file_lock(wt.with_name(wt.name + ".lock"), f"the {arch} worktree of {tree.path}", on_wait=say)


def checkout(wt: pathlib.Path, commit: str) -> None:
    _git(wt, "checkout", "-q", "--detach", commit)


def _apply_range(wt: pathlib.Path, series: Series, base_commit: str) -> None:
    first = series.patches[0].source_commit
    parent = _text(_git(wt, "rev-parse", f"{first}^"))
    if parent == base_commit:
        # The commits sit on the base already: test exactly them.
        _git(wt, "checkout", "-q", "--detach", series.patches[-1].source_commit or "")
        for p in series.patches:
            p.commit = p.source_commit
        return
    for p in series.patches:
        out = _git(wt, "cherry-pick", "--allow-empty", p.source_commit or "", check=False)
        if out.returncode:
            conflicts = _text(_git(wt, "diff", "--name-only", "--diff-filter=U")).split()
            raise SeriesDoesNotApply(
                f"Commit {p.number}/{len(series.patches)} ({p.subject}) does not apply on the base: "
                f"conflicts in {', '.join(conflicts) or 'the tree'}; the worktree is left at {wt} "
                "for a look (git status).", wt, p, conflicts)
        p.commit = _text(_git(wt, "rev-parse", "HEAD"))


def _failed_files(stderr: str) -> list[str]:
    files = re.findall(r"^(?:error: patch failed: |CONFLICT \(content\): Merge conflict in )(\S+?)(?::\d+)?$",
                       stderr, re.M)
    files += re.findall(r"^error: (\S+): does not exist in index$", stderr, re.M)
    return list(dict.fromkeys(files))


def _already_applied(wt: pathlib.Path, series: Series) -> bool:
    return all(_git(wt, "apply", "--check", "-R", input=p.raw, check=False).returncode == 0
               for p in series.patches)


def _apply_mails(wt: pathlib.Path, series: Series) -> None:
    if _already_applied(wt, series):
        raise SeriesDoesNotApply(
            f"The series is already in the base: every patch of it applies in reverse on "
            f"{_text(_git(wt, 'rev-parse', '--short', 'HEAD'))}; test it on an older base (BASE=).",
            wt, None, [])
    for p in series.patches:
        out = _git(wt, "am", "-3", input=p.raw, check=False)
        if out.returncode:
            stderr = out.stderr.decode(errors="replace") + out.stdout.decode(errors="replace")
            files = _failed_files(stderr) or \
                _text(_git(wt, "diff", "--name-only", "--diff-filter=U")).split()
            raise SeriesDoesNotApply(
                f"Patch {p.number}/{len(series.patches)} ({p.subject}) does not apply on the base: "
                f"{'conflicts in ' + ', '.join(files) if files else stderr.strip().splitlines()[-1][:200]}; "
                f"the worktree is left at {wt} for a look (git am --show-current-patch).",
                wt, p, files)
        p.commit = _text(_git(wt, "rev-parse", "HEAD"))


def tree_id_of(repo: pathlib.Path, commit: str) -> str:
    """The identity kernel/source.py gives a clean checkout of `commit`."""
    return "git:" + _text(_git(repo, "rev-parse", f"{commit}^{{tree}}"))


def _borrowed_from(checkout: pathlib.Path) -> pathlib.Path | None:
    """The work tree whose objects the checkout borrows (its alternates: <tree>/.git/objects)."""
    try:
        lines = (checkout / ".git" / "objects" / "info" / "alternates").read_text().split()
    except OSError:
        return None
    objects = pathlib.Path(lines[0]) if lines else None
    if objects is None or objects.parent.name != ".git" or not objects.is_dir():
        return None
    return objects.parent.parent


def worktree_tree(applied_path: pathlib.Path, origin: str) -> KernelTree:
    """The worktree as a tree to build: its identity is its commit's tree; where a mount
    namespace is allowed (every tree builds at the same paths there, kernel/treeview.py)
    its first build starts from the build dir of the tree it is a worktree of (kernel/seed.py)."""
    commit = _text(_git(applied_path, "rev-parse", "HEAD"))
    tree_hash = _text(_git(applied_path, "rev-parse", "HEAD^{tree}"))
    twin = _borrowed_from(applied_path) if treeview.unshare_prefix() else None
    return KernelTree(path=applied_path, tree_id=f"git:{tree_hash}",
                      version=kernel_version(applied_path), origin=origin, git_commit=commit,
                      builds_as=twin if twin != applied_path else None)
