"""Speed-ups of Copier renders into a fresh directory (part of the render layer).

1. A Jinja bytecode cache. Compiling the template's Jinja sources is most of a render's time
   (about 0.3 s of 0.65 s for the inventory example) and Copier keeps no cache. Jinja's own
   `FileSystemBytecodeCache` fixes that, but its default key includes the template's absolute
   path, and Copier renders from a fresh clone in a new temporary directory every time. Here the
   key is the template's name plus a fingerprint of the environment's compile-time settings;
   Jinja itself checks a checksum of the source, so a changed template is always recompiled.
2. No per-file `git config` probe. After writing each file Copier runs git in the destination to
   mirror executable bits into its git index when `core.fileMode` is false; that only matters
   for files already tracked there, and nothing is tracked in microforge's brand-new staging
   directory, so the probe (one git process per file) is skipped.
3. Compiled `from_string` templates, and one render context per render phase. Copier renders
   every path, every question's `when` and default, and the answers file's name (once per file
   written) with `from_string`, which compiles the source each time, and rebuilds its whole
   context for each: each about a third of a service's render. The code objects are kept per
   process, keyed like the bytecode cache (environment fingerprint and source); the context
   and the answers file's name once the questions are answered (`_render_phase_context`).
4. One template clone per system (`shared_clones()`, used by `microforge blueprint`). From a
   git template Copier clones the repository (and commits its uncommitted changes) for every
   render, about 0.5 s each; the renders of one system read the same commit, so the first
   clone is kept and handed to the others (the template is only read; its original location is
   what the answers record), and its `copier.yml` is parsed once.

The output is the same with and without them (the tests compare). Copier offers no hook for
any, so `faster_copier()` swaps internals of its `Worker` class for the duration of a render,
and `shared_clones()` the `clone` function its templates call, and each leaves alone whichever
of them has changed shape.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property, partial
from pathlib import Path
from types import CodeType
from typing import Any

from jinja2 import BytecodeCache, Environment, FileSystemBytecodeCache
from jinja2.bccache import Bucket

DISABLE_VARIABLE = "MICROFORGE_NO_JINJA_CACHE"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/microforge/jinja`` (default ``~/.cache/microforge/jinja``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "microforge" / "jinja"


def fingerprint(env: Environment) -> str:
    """What the compiled code of a source depends on, besides the source itself."""
    import jinja2

    settings = (
        jinja2.__version__,
        type(env).__qualname__,
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        repr(env.autoescape),
        sorted(env.extensions),
    )
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


class NamedBytecodeCache(FileSystemBytecodeCache):
    """Bytecode keyed by template name and environment fingerprint, not by absolute path."""

    def __init__(self, directory: Path, env_fingerprint: str) -> None:
        super().__init__(str(directory), "%s.cache")
        self.env_fingerprint = env_fingerprint

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return hashlib.sha256(f"{self.env_fingerprint}\0{name}".encode()).hexdigest()

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        bucket = super().get_bucket(environment, name, filename, source)
        if bucket.code is not None:  # what compiling does besides: extensions reset their state
            environment.preprocess(source, name, filename)  # (Copier's `yield` tag)
        return bucket

    def dump_bytecode(self, bucket: Bucket) -> None:
        with suppress(OSError):  # a full or read-only disk costs speed, never the render
            super().dump_bytecode(bucket)


def bytecode_cache(env: Environment) -> BytecodeCache | None:
    """A cache for `env` in `cache_dir()`, or None if disabled or the directory is unusable."""
    if os.environ.get(DISABLE_VARIABLE):
        return None
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(directory, os.W_OK):
        return None
    return NamedBytecodeCache(directory, fingerprint(env))


@contextmanager
def faster_copier() -> Iterator[None]:
    """While active, Copier's Jinja environments use the bytecode cache, and the per-file git
    index probe is skipped (only for renders into a new, untracked directory)."""
    from copier import _main

    worker = getattr(_main, "Worker", None)
    if not isinstance(worker, type):
        yield
        return
    swaps: list[tuple[str, object]] = []
    original = vars(worker).get("jinja_env")
    if isinstance(original, cached_property):
        build: Callable[[Any], Environment] = original.func

        def jinja_env(self: Any) -> Environment:
            env = build(self)
            if env.bytecode_cache is None:
                env.bytecode_cache = bytecode_cache(env)
            if not os.environ.get(DISABLE_VARIABLE):
                env.from_string = partial(_from_string, env, fingerprint(env))  # type: ignore[method-assign]
            return env

        patched = cached_property(jinja_env)
        patched.__set_name__(worker, "jinja_env")
        swaps.append(("jinja_env", patched))
    if callable(vars(worker).get("_sync_git_index_executable_bit")):
        swaps.append(("_sync_git_index_executable_bit", _skip_index_sync))
    if not os.environ.get(DISABLE_VARIABLE):
        swaps += _render_phase_context(worker)
    saved = [(name, vars(worker)[name]) for name, _ in swaps]
    for name, value in swaps:
        setattr(worker, name, value)
    try:
        yield
    finally:
        for name, value in saved:
            setattr(worker, name, value)


def _skip_index_sync(self: Any, dst_relpath: Any, src_mode: int) -> None:
    """Nothing to mirror: no file of a new staging directory is tracked by any git index."""


_RENDERING = "_microforge_rendering"
_CONTEXT = "_microforge_context"
_ANSWERS_RELPATH = "_microforge_answers_relpath"


def _render_phase_context(worker: type) -> list[tuple[str, object]]:
    """The swaps that build Copier's render context once per render phase.

    Copier rebuilds the whole Jinja context (every answer, the answers to remember, its
    settings) for each path, string and file it renders, and renders the answers file's name
    again each time it checks a path: about a third of a service's render. Once the questions
    are answered (`_render_template`, the render phase) none of that changes, so the context is
    built once and each caller gets a copy (with its own copy of the lazy `_copier_conf`, which
    Copier's `answers_relpath` writes into), and the answers file's name is rendered once."""
    from copier._types import LazyDict

    render_template = vars(worker).get("_render_template")
    render_context = vars(worker).get("_render_context")
    relpath = vars(worker).get("answers_relpath")
    if not (
        callable(render_template)
        and callable(render_context)
        and isinstance(relpath, property)
        and relpath.fget is not None
        and {"_pending", "_done"} <= set(vars(LazyDict({})))
    ):
        return []
    relpath_of = relpath.fget

    def copy_conf(conf: Any) -> Any:
        copied: Any = LazyDict({})
        copied._pending = dict(conf._pending)
        copied._done = dict(conf._done)
        return copied

    def _render_template(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.__dict__[_RENDERING] = True
        try:
            return render_template(self, *args, **kwargs)
        finally:
            for key in (_RENDERING, _CONTEXT, _ANSWERS_RELPATH):
                self.__dict__.pop(key, None)

    def _render_context(self: Any) -> Any:
        if not self.__dict__.get(_RENDERING):
            return render_context(self)
        built = self.__dict__.get(_CONTEXT)
        if built is None or not isinstance(built.get("_copier_conf"), LazyDict):
            built = self.__dict__[_CONTEXT] = render_context(self)
        context = dict(built)
        context["_copier_conf"] = copy_conf(built["_copier_conf"])
        return context

    def answers_relpath(self: Any) -> Any:
        if not self.__dict__.get(_RENDERING):
            return relpath_of(self)
        if _ANSWERS_RELPATH not in self.__dict__:
            self.__dict__[_ANSWERS_RELPATH] = relpath_of(self)
        else:  # what its compile did besides: extensions reset their state (Copier's `yield`
            self.jinja_env.preprocess("")  # tag, whose check after each file relies on it)
        return self.__dict__[_ANSWERS_RELPATH]

    return [
        ("_render_template", _render_template),
        ("_render_context", _render_context),
        ("answers_relpath", property(answers_relpath, doc=relpath.__doc__)),
    ]


_COMPILED: dict[tuple[str, str], CodeType] = {}
"""Code objects of `from_string` sources in this process, by (environment fingerprint, source)."""


def _from_string(
    env: Environment,
    env_fingerprint: str,
    source: Any,
    globals: Any = None,
    template_class: Any = None,
) -> Any:
    """`Environment.from_string`, compiling each source once per process."""
    if not isinstance(source, str):
        return type(env).from_string(env, source, globals, template_class)
    key = (env_fingerprint, source)
    code = _COMPILED.get(key)
    if code is None:
        code = _COMPILED[key] = env.compile(source)
    else:  # what compiling would do besides: extensions reset their state (Copier's `yield`)
        env.preprocess(source)
    cls = template_class or env.template_class
    return cls.from_code(env, code, env.make_globals(globals), None)


@contextmanager
def shared_clones(*templates: Path) -> Iterator[list[str]]:
    """While active (in this process and the workers it forks), Copier clones a git template
    once per (url, ref) and every later render reuses that clone; it is removed at the end.
    `templates` are cloned (at HEAD) on entry, before any worker is forked. Yields the notes of
    the clones made (Copier's warnings, e.g. dirty changes included), which the renders that
    reuse a clone no longer see."""
    from copier import _template
    from copier.errors import CopierWarning

    original = getattr(_template, "clone", None)
    if not callable(original) or os.environ.get(DISABLE_VARIABLE):
        yield []
        return
    owner = os.getpid()
    clones: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    kept = Path(tempfile.mkdtemp(prefix="microforge-template-"))

    def clone(url: str, ref: str = "HEAD", location: str | None = None) -> str:
        key = (url, ref)
        if key not in clones:
            target = kept / str(len(clones))
            target.mkdir()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CopierWarning)
                clones[key] = original(url, ref, location=str(target))
            for warning in caught:
                if issubclass(warning.category, CopierWarning):
                    notes.append(str(warning.message))
                else:
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )
        return clones[key]  # `location`, Copier's own empty directory, is left to Copier

    load_config = getattr(_template, "load_template_config", None)
    configs: dict[tuple[str, bool], Any] = {}

    def load_template_config(conf_path: Path, quiet: bool = False) -> Any:
        """Copier's `copier.yml` reader, once per file: the clones do not change."""
        key = (str(conf_path), quiet)
        if key not in configs:
            configs[key] = load_config(conf_path, quiet)  # type: ignore[misc]
        return copy.deepcopy(configs[key])

    setattr(_template, "clone", clone)  # noqa: B010  (not in its __all__)
    if callable(load_config):
        setattr(_template, "load_template_config", load_template_config)  # noqa: B010
    try:
        for root in templates:
            template = _template.Template(url=str(root), ref="HEAD")
            try:  # a failure here is the renders' to report, each cloning for itself
                with suppress(Exception):
                    template.config_data  # noqa: B018  (clones it, reads its copier.yml)
            finally:
                template._cleanup()
        yield notes
    finally:
        setattr(_template, "clone", original)  # noqa: B010
        if callable(load_config):
            setattr(_template, "load_template_config", load_config)  # noqa: B010
        if os.getpid() == owner:
            shutil.rmtree(kept, ignore_errors=True)
