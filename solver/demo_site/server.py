"""The server moved to :mod:`solver.server` (the API and the labelling page use it too).

Kept so that ``solver.demo_site.server`` imports still work; import from
:mod:`solver.server` in new code.
"""

from solver.server import DEFAULT_HOST, DEFAULT_PORT, SiteServer, bind

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "SiteServer", "bind"]
