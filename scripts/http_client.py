"""One person's browser for live-server tests: a cookie jar and urllib, nothing else."""
from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 60


class HttpClient:
    """Logs in through the login form (CSRF on) and sends requests with its own cookies."""

    def __init__(self, base_url: str, username: str, password: str,
                 policy: http.cookiejar.CookiePolicy | None = None):
        self.base_url = base_url
        self.username, self.password = username, password
        self.jar = http.cookiejar.CookieJar(policy)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def csrf_cookie(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def request(self, method: str, path: str, data: dict | None = None, *, as_json: bool = True):
        body = urllib.parse.urlencode(data or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        if as_json:
            request.add_header("Accept", "application/json")
        if method == "POST":
            request.add_header("X-CSRFToken", self.csrf_cookie())
        return request

    def open(self, method: str, path: str, data: dict | None = None, *, as_json: bool = True,
             timeout: float = TIMEOUT):
        """The open response (an error status too), for a caller that reads it bit by bit."""
        try:
            return self.opener.open(self.request(method, path, data, as_json=as_json), timeout=timeout)
        except urllib.error.HTTPError as error:
            return error

    def send(self, method: str, path: str, data: dict | None = None, *, as_json: bool = True,
             timeout: float = TIMEOUT):
        """(status, final url, body); redirects are followed as a browser would."""
        with self.open(method, path, data, as_json=as_json, timeout=timeout) as response:
            return response.status, response.geturl(), response.read().decode()

    def log_in(self) -> str:
        """Log in through the form; the URL the login lands on."""
        status, _, page = self.send("GET", "/accounts/login/", as_json=False)
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, url, _ = self.send(
            "POST", "/accounts/login/",
            {"username": self.username, "password": self.password, "csrfmiddlewaretoken": token},
            as_json=False,
        )
        assert status == 200, (self.username, status, url)
        return url
