"""A small HTTP client of the tunepool API, used by the CLI (and handy in scripts).

Where to connect, first match wins: explicit arguments, ``TUNEPOOL_API_URL`` /
``TUNEPOOL_API_KEY``, then a credentials file (``TUNEPOOL_CONFIG``, else
``$TUNEPOOL_HOME/credentials.json`` as ``tunepool up`` writes it; its ``teams`` map is
read for ``TUNEPOOL_TEAM``, else the only or the ``default`` team).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


class ClientError(Exception):
    """A failure a person can act on: the API's own message, or why it could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


@dataclass(frozen=True)
class ClientConfig:
    api_url: str
    api_key: str
    source: str


def _credentials_file() -> Path:
    explicit = os.environ.get("TUNEPOOL_CONFIG")
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("TUNEPOOL_HOME") or Path.home() / ".tunepool")
    return home / "credentials.json"


def load_config(api_url: str | None = None, api_key: str | None = None) -> ClientConfig:
    url = api_url or os.environ.get("TUNEPOOL_API_URL")
    key = api_key or os.environ.get("TUNEPOOL_API_KEY")
    source = "arguments and environment"
    if not (url and key):
        path = _credentials_file()
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ClientError(f"cannot read {path}: {exc}") from None
            source = str(path)
        url = url or data.get("api_url")
        if not key:
            key = data.get("api_key") or _team_key(data.get("teams") or {}, path)
    if not url:
        raise ClientError(
            "no API address: set TUNEPOOL_API_URL (or run `tunepool up`, which writes "
            f"{_credentials_file()})"
        )
    if not key:
        raise ClientError("no API key: set TUNEPOOL_API_KEY (a team key)")
    return ClientConfig(url.rstrip("/"), key, source)


def _team_key(teams: dict[str, str], path: Path) -> str | None:
    wanted = os.environ.get("TUNEPOOL_TEAM")
    if wanted:
        if wanted not in teams:
            raise ClientError(f"team {wanted!r} has no key in {path}")
        return teams[wanted]
    if len(teams) == 1:
        return next(iter(teams.values()))
    return teams.get("default")


class Client:
    def __init__(self, config: ClientConfig, timeout_s: float = 60.0) -> None:
        self.config, self.timeout_s = config, timeout_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {config.api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.config.api_url + path
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            resp = self.http.request(method, url, **kwargs)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach the API at {self.config.api_url}") from None
        except requests.Timeout:
            raise ClientError(f"{method} {path}: no answer within {self.timeout_s:.0f}s") from None
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, json=body)

    def upload(self, path: Path, fields: dict[str, str]) -> Any:
        with path.open("rb") as data:
            files = {"file": (path.name, data, "application/octet-stream")}
            return self.request("POST", "/v1/datasets", files=files, data=fields)

    def download(self, path: str, dest: Path) -> int:
        """Stream a file answer (following a presigned redirect) into ``dest``; its size.

        Written to a temporary name and renamed, so ``dest`` is never half a file."""
        url = self.config.api_url + path
        try:
            resp = self.http.get(url, stream=True, timeout=(10, self.timeout_s))
        except requests.RequestException:
            raise ClientError(f"cannot reach the API at {self.config.api_url}") from None
        if resp.status_code >= 400:
            raise _error(resp)
        partial = dest.with_name(dest.name + ".part")
        size = 0
        with resp, partial.open("wb") as out:
            for chunk in resp.iter_content(1024 * 1024):
                out.write(chunk)
                size += len(chunk)
        partial.replace(dest)
        return size

    def stream(self, path: str, after: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-Sent Events as (event, data); reconnects with Last-Event-ID until ``end``."""
        last = after
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            try:
                resp = self.http.get(
                    self.config.api_url + path,
                    params={"follow": 1},
                    headers=headers,
                    stream=True,
                    timeout=(10, 120),
                )
            except requests.RequestException:
                raise ClientError(f"cannot reach the API at {self.config.api_url}") from None
            if resp.status_code >= 400:
                raise _error(resp)
            event, data, ident = "message", "", None
            with resp:
                for line in resp.iter_lines(decode_unicode=True):
                    if line == "":
                        if data:
                            if ident is not None:
                                last = int(ident)
                            parsed = json.loads(data)
                            yield event, parsed
                            if event == "end":
                                return
                        event, data, ident = "message", "", None
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line.startswith("id:"):
                        ident = line[3:].strip()
            # The server ends long streams; resume after the last event seen.


def _error(resp: requests.Response) -> ClientError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = (body or {}).get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        message = str(err["message"])
    else:
        message = resp.text[:300] or resp.reason
    return ClientError(f"{resp.status_code}: {message}", resp.status_code, body)
