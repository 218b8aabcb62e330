"""The web dashboard at `/ui`: server-rendered pages with htmx and uPlot, shipped in the package, behind the admin key.

`dashboard(settings)` is the one entry point: the Mount that `isthmus.app` serves (None when turned off or when no
admin key is configured, since the admin key is what signs in).
"""

from isthmus.ui.app import Dashboard, dashboard

__all__ = ["Dashboard", "dashboard"]
