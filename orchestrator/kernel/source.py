"""Source stage: find the kernel tree to test and give it a content identity.

The default tree is Debian's linux-source tarball, made into a git repository in the
cache once. A user's tree (KERNEL=) is used in place and builds go to the cache; the one
file written into it is the device tree of the built-in boot route (guest/bootroute.py,
loongarch64 on QEMU 7.2: kbuild takes a built-in DTB only from arch/*/boot/dts/), named
orchestrator-*.dts and left out of the tree's identity.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import shutil

from .. import hosttools
from .. import cache
from ..errors import ExitCode, OrchestratorError
from . import snapshot, trees
from .trees import BUILTIN_TREES, DEFAULT_TREE

# The identity git needs for commits, and no automatic gc/maintenance: a `git gc --auto`
# after recording an 80k-file tree repacked for ~8 minutes beside the kernel build.
GIT_CONFIG = ["-c", "user.name=orchestrator", "-c", "user.email=orchestrator@localhost",
              "-c", "gc.auto=0", "-c", "maintenance.auto=false"]
# git run on the user's tree only reads it: no opportunistic index refresh written back
# (git status, and other commands, do that unless told not to).
GIT_READ_ONLY_ENV = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


@dataclasses.dataclass(frozen=True)
class KernelTree:
    path: pathlib.Path
    tree_id: str          # changes whenever the tree's content does
    version: str          # from the top Makefile, e.g. 6.12.117
    origin: str           # where it came from, for the report
    git_commit: str | None
    # A series worktree whose first build starts from a copy of the build dir of the tree
    # it is a worktree of (kernel/seed.py): that tree's path.
    builds_as: pathlib.Path | None = None
    # A user's tree configured in place is built from its snapshot in the cache
    # (kernel/snapshot.py); `path` stays the user's tree (git, records, --rerun).
    snapshot: pathlib.Path | None = None
    is_user_tree: bool = False   # the user's own (never written to), not one in the cache

    @property
    def source(self) -> pathlib.Path:
        """Where kbuild builds from (and anything that writes beside the sources)."""
        return self.snapshot or self.path

    @property
    def slug(self) -> str:
        """A directory name for this tree's build dirs: readable, and unique per location."""
        return slug_for(self.path)


def slug_for(path: pathlib.Path) -> str:
    where = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{path.name}-{where}"


def _git(path: pathlib.Path, *args: str, check: bool = True) -> str:
    out = hosttools.run_tree(["git", "-C", str(path), *args], capture_output=True, text=True, env=GIT_READ_ONLY_ENV)
    if check and out.returncode != 0:
        raise OrchestratorError(f"git {' '.join(args)} failed in {path}: {out.stderr.strip()}",
                                ExitCode.INFRA_ERROR)
    return out.stdout.strip()


def kernel_version(path: pathlib.Path) -> str:
    fields = {}
    try:
        for line in (path / "Makefile").read_text(errors="replace").splitlines()[:12]:
            m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
            if m:
                fields[m.group(1)] = m.group(2)
    except OSError:
        return "unknown"
    v = f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}"
    if fields.get("SUBLEVEL") not in (None, "", "0"):
        v += f".{fields['SUBLEVEL']}"
    return v + fields.get("EXTRAVERSION", "")


def _check_is_kernel_tree(path: pathlib.Path) -> None:
    if not path.is_dir():
        raise OrchestratorError(f"KERNEL={path} does not exist or is not a directory; "
                                "point KERNEL= at the top of a Linux source tree.")
    needed = ["Makefile", "Kconfig", "arch", "kernel/trace"]
    absent = [n for n in needed if not (path / n).exists()]
    if absent:
        raise OrchestratorError(
            f"KERNEL={path} is not a Linux source tree (no {', '.join(absent)}); "
            "point KERNEL= at the directory that holds the kernel's top-level Makefile.")


def _plain_tree_id(path: pathlib.Path) -> str:
    """Identity of a non-git tree from every file's path, size and mtime (no content read)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            if name.startswith("orchestrator-"):
                continue  # boot plumbing the orchestrator itself writes (guest/bootroute.py)
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "plain:" + h.hexdigest()


def _git_tree_id(path: pathlib.Path, ignored_too: bool = False) -> tuple[str, str]:
    """The tree's identity: HEAD's tree, and a digest of what differs from it (tracked
    edits, and files git does not track: not ignored ones, or every one if ignored_too)."""
    commit = _git(path, "rev-parse", "HEAD")
    tree = _git(path, "rev-parse", "HEAD^{tree}")
    diff = hosttools.run_tree(["git", "-C", str(path), "diff", "HEAD", "--binary"],
                              capture_output=True, env=GIT_READ_ONLY_ENV).stdout
    # Files git does not track (and does not ignore) are built too (a new .c file): their
    # path, size and mtime, as for a plain tree; git diff shows none of them.
    untracked = hosttools.run_tree(["git", "-C", str(path), "ls-files", "-z", "--others",
                                *([] if ignored_too else ["--exclude-standard"])],
                                   capture_output=True, env=GIT_READ_ONLY_ENV).stdout
    h = hashlib.sha256(diff)
    for rel in sorted(untracked.split(b"\0")):
        if not rel or pathlib.PurePath(rel.decode(errors="replace")).name.startswith("orchestrator-"):
            continue   # empty, or boot plumbing the orchestrator itself writes (guest/bootroute.py)
        try:
            st = os.lstat(path / rel.decode(errors="surrogateescape"))
        except OSError:
            continue
        h.update(rel + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if diff or h.digest() != hashlib.sha256(b"").digest():
        return f"git:{tree}+dirty:{h.hexdigest()[:16]}", commit
    return f"git:{tree}", commit


def user_tree(path_text: str) -> KernelTree:
    """The user's tree as it stands (one configured in place is built from a snapshot in
    the cache: buildable(), when a build needs it)."""
    path = pathlib.Path(path_text).expanduser().resolve()
    _check_is_kernel_tree(path)
    is_git = (path / ".git").exists() and _git(path, "rev-parse", "--show-toplevel",
                                                check=False) == str(path)
    if is_git:
        tree_id, commit = _git_tree_id(path)
    else:
        tree_id, commit = _plain_tree_id(path), None
    return KernelTree(path=path, tree_id=tree_id, version=kernel_version(path),
                      origin=f"user tree {path}", git_commit=commit, is_user_tree=True)


def buildable(tree: KernelTree, cache_root: pathlib.Path, writes_beside_sources: str | None = None,
              say=print) -> KernelTree:
    """The tree as a build takes it: a user's tree configured in place (kbuild builds out
    of tree only from a clean source), or one whose build writes beside its sources
    (writes_beside_sources says what, e.g. the built-in DTB route's device tree), is built
    from its snapshot in the cache (kernel/snapshot.py); any other tree where it is."""
    if not tree.is_user_tree or tree.snapshot is not None:
        return tree
    if snapshot.configured_in_place(tree.path):
        why = "is configured in place (kbuild builds out of tree only from a clean source)"
    elif writes_beside_sources:
        why = f"is built with {writes_beside_sources} written beside its sources"
    else:
        return tree
    is_git = tree.git_commit is not None
    return dataclasses.replace(tree, snapshot=snapshot.snapshot(tree.path, tree.slug, cache_root, is_git, why, say))


def builtin_tree(name: str, cache_root: pathlib.Path, say=print) -> KernelTree:
    """A built-in tree by name (kernel/trees.py) as a git repo in the cache, made once."""
    tree = BUILTIN_TREES[name]
    return _tarball_tree(trees.ensure_tarball(tree, cache_root, say), tree.package, cache_root, say)


def default_tree(cache_root: pathlib.Path, say=print) -> KernelTree:
    return builtin_tree(DEFAULT_TREE, cache_root, say)


def _tarball_tree(tarball: pathlib.Path, package: str, cache_root: pathlib.Path, say) -> KernelTree:
    """Debian's linux-source tarball as a git repo in the cache, made once."""
    stem = tarball.name.split(".tar")[0]
    sources = cache_root / "sources"
    dest = sources / stem
    stamp = sources / f"{stem}.done"
    st = tarball.stat()
    tarball_key = f"{tarball}:{st.st_size}:{st.st_mtime_ns}"
    with cache.file_lock(sources / f"{stem}.lock", f"the {stem} tree", on_wait=say):
        if not (stamp.exists() and stamp.read_text() == tarball_key and (dest / ".git").exists()):
            _unpack_into_git(tarball, package, dest, say)
            cache.atomic_write(stamp, tarball_key)
    # An edit made inside the cache's copy (by hand, to try something) is part of what
    # is built, so part of the identity too. Debian's .gitignore ignores every path
    # ("/*"): a file added there is seen only with ignored files counted.
    tree_id, commit = _git_tree_id(dest, ignored_too=True)
    return KernelTree(path=dest, tree_id=tree_id, version=kernel_version(dest),
                      origin=f"Debian {tarball.name}", git_commit=commit)


def _unpack_into_git(tarball: pathlib.Path, package: str, dest: pathlib.Path, say) -> None:
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    say(f"source: unpacking {tarball.name} into the cache (once, about a minute)")
    out = hosttools.run_tree(["tar", "-xJf", str(tarball), "-C", str(partial), "--no-same-owner"],
                             capture_output=True, text=True)
    tops = [p for p in partial.iterdir() if p.is_dir()]
    if out.returncode != 0 or len(tops) != 1:
        shutil.rmtree(partial, ignore_errors=True)
        raise OrchestratorError(f"Cannot unpack {tarball}: {out.stderr.strip()[-300:] or 'unexpected layout'}; "
                                f"reinstall it (`apt-get install --reinstall {package}`).",
                                ExitCode.INFRA_ERROR)
    top = tops[0].name
    tree = partial / top
    say("source: recording the tree as a git repository")
    _git(tree, "init", "-q")
    # Later commits in this repo and its worktrees (series applied with git am) too.
    _git(tree, "config", "gc.auto", "0")
    _git(tree, "config", "maintenance.auto", "false")
    # Debian's tarball .gitignore ends with "/*": without -f nothing would be added.
    _git(tree, "add", "-A", "-f")
    _git(tree, *GIT_CONFIG, "commit", "-q", "-m", f"{tarball.name} as shipped by Debian")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tree, dest)
    shutil.rmtree(partial, ignore_errors=True)
