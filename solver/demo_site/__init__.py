"""The local synthetic captcha site: the demo's target and the end-to-end tests' target."""

from solver.demo_site.live import LiveSite
from solver.demo_site.site import SESSION_COOKIE, CaptchaSite, Challenge
from solver.demo_site.styles import Style, get_style, load_styles
from solver.server import DEFAULT_HOST, DEFAULT_PORT, SiteServer  # the site's server, re-exported for the README's example

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "SESSION_COOKIE", "CaptchaSite", "Challenge", "LiveSite",
           "SiteServer", "Style", "get_style", "load_styles"]
