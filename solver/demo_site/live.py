"""A running local site with in-process access to its answers, for tests and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from solver.server import SiteServer
from solver.demo_site.site import SESSION_COOKIE, CaptchaSite, Challenge
from solver.errors import SiteError

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from solver.profiles import SiteProfile


@dataclass
class LiveSite:
    """A :class:`CaptchaSite` served by a :class:`SiteServer`."""

    site: CaptchaSite
    server: SiteServer

    def url_for(self, style: str) -> str:
        return self.server.url_for(style)

    def profile(self, style: str, profiles_dir: str | None = None) -> SiteProfile:
        """The style's profile (from the profiles folder if there), pointing at this server."""
        from solver.demo import demo_profile

        return demo_profile(style, profiles_dir).with_url(self.url_for(style))

    @staticmethod
    def session_id(page: Page) -> str:
        for cookie in page.context.cookies():
            if cookie["name"] == SESSION_COOKIE:
                return cookie["value"]
        raise SiteError(f"{page.url}: the site set no session cookie "
                        "(open a page of the local site first)")

    def challenge(self, page: Page, style: str) -> Challenge | None:
        """The captcha the site now shows to ``page``'s session."""
        return self.site.challenge(self.session_id(page), style)

    def answer(self, page: Page, style: str) -> str | None:
        """The answer of the captcha the site now shows to ``page``'s session."""
        return self.site.answer(self.session_id(page), style)
