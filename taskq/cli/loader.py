"""Import the ``App`` a ``module:attribute`` reference names."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from ..app import App
from ..errors import ConfigError, TaskqError


def load_app(reference: str) -> App:
    """The App at ``package.module:app`` (``:app`` may be left out), importing from the cwd too."""
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(f"{reference!r} is not a module:app reference (e.g. myproj.tasks:app)")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except TaskqError:
        raise  # taskq's own one-line errors, e.g. a bad INTERVAL met by App() at import
    except Exception as exc:
        # the module itself (or a package on its path) missing, not something it imports: a
        # bare prefix test would blame "tasks_x" for its own failed "import tasks"
        missing = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ConfigError(
                f"cannot import module {module_name!r} (from {reference!r})"
            ) from None
        raise ConfigError(_import_failed(module_name, exc)) from None
    app = getattr(module, attribute, None)
    if app is None:
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(app, App):
        raise ConfigError(f"{reference!r} is a {type(app).__name__}, not a taskq.App")
    return app


def _import_failed(module_name: str, exc: BaseException) -> str:
    """One line for a module that raised while it was imported: the error and where it arose."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}, line {exc.lineno}"
        message = f"SyntaxError: {exc.msg}"
    else:
        # the innermost frame outside importlib's own machinery: the user's line that raised
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename
        ]
        where = f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else "?"
        message = f"{type(exc).__name__}: {exc}"
    return f"importing module {module_name!r} failed: {message} ({where})"
