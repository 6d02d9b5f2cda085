"""The run layer of a whole system (`microforge run SYSTEM`): the system found on disk
(`layout`), its broker (`broker`), secrets and tokens (`credentials`), its supervised processes
(`supervisor`), the journey replay (`journey`) and the run itself (`start`). Nothing imports it
but the CLI."""

from .layout import SystemLayout, find_system, is_system
from .start import Options, run_system

__all__ = ["Options", "SystemLayout", "find_system", "is_system", "run_system"]
