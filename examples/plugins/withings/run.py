#!/usr/bin/env python3
"""Withings OAuth plugin for tidegate-exec (plugin protocol v1).

Reads one JSON request on stdin, prints one JSON response on stdout and
logs to stderr. Standard library only. Client id and secret come from the
environment and are never logged; tokens never leave the database except
to Withings.

Commands:
  oauth_callback  exchange ?code= at Withings' token endpoint
                  (action=requesttoken, grant_type=authorization_code),
                  store the tokens, emit withings.authorized
  refresh         renew stored tokens (grant_type=refresh_token),
                  emit withings.refreshed
  health          configuration and database check (lifecycle command)
"""

import hmac
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TOKEN_URL = "https://wbsapi.withings.net/v2/oauth2"
# Keep below tidegate-exec's timeout for this plugin (exec.timeout).
HTTP_TIMEOUT_SECONDS = 15
MAX_RESPONSE_BYTES = 1 << 20


class PluginError(Exception):
    """A failure to report as {"status": "error"}; never carries secrets."""

    def __init__(self, message, retry=False):
        super().__init__(message)
        self.retry = retry


def log(message):
    print(f"withings: {message}", file=sys.stderr, flush=True)


def setting(name, config, key, default=None):
    """The environment variable, else the config key, else the default."""
    value = os.environ.get(name) or config.get(key)
    return value if value else default


def required(name, config, key):
    value = setting(name, config, key)
    if not value:
        raise PluginError(f"{name} is not set (tidegate-exec's environment, or [exec.plugins.withings] env or config)")
    return value


def secret(name):
    """A secret: from the environment only, so it never travels in config."""
    value = os.environ.get(name)
    if not value:
        raise PluginError(f"{name} is not set (tidegate-exec's environment or [exec.plugins.withings.env])")
    return value


def database(config):
    path = setting("WITHINGS_DB", config, "db")
    if not path:
        path = os.path.join(os.environ["TIDEGATE_PLUGIN_DATA"], "withings.db")
    connection = sqlite3.connect(path, timeout=10)
    connection.execute(
        """CREATE TABLE IF NOT EXISTS tokens (
               userid        TEXT PRIMARY KEY,
               access_token  TEXT NOT NULL,
               refresh_token TEXT NOT NULL,
               expires_at    INTEGER NOT NULL,  -- unix seconds
               scope         TEXT,
               token_type    TEXT,
               updated_at    INTEGER NOT NULL   -- unix seconds
           )"""
    )
    os.chmod(path, 0o600)
    return connection


def request_token(params, config):
    """POSTs Withings' requesttoken form; returns the response's body."""
    url = setting("WITHINGS_TOKEN_URL", config, "token_url", DEFAULT_TOKEN_URL)
    form = urllib.parse.urlencode({"action": "requesttoken", **params}).encode()
    request = urllib.request.Request(
        url,
        data=form,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            raw = response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as error:
        raise PluginError(
            f"the Withings token endpoint answered HTTP {error.code}",
            retry=error.code >= 500 or error.code == 429,
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PluginError(f"the Withings token endpoint is unreachable: {reason}", retry=True) from None
    try:
        document = json.loads(raw)
    except ValueError:
        raise PluginError("the Withings token endpoint did not answer JSON", retry=True) from None
    status = document.get("status")
    if status != 0:
        message = document.get("error") or "no message"
        raise PluginError(f"Withings refused the request (status {status}: {message})")
    body = document.get("body") or {}
    missing = [key for key in ("userid", "access_token", "refresh_token", "expires_in") if key not in body]
    if missing:
        raise PluginError(f"the Withings answer lacks {', '.join(missing)}")
    return body


def store(connection, body):
    """Saves the tokens; returns (userid, expires_at, scope)."""
    userid = str(body["userid"])
    now = int(time.time())
    expires_at = now + int(body["expires_in"])
    scope = body.get("scope")
    with connection:
        connection.execute(
            """INSERT INTO tokens (userid, access_token, refresh_token, expires_at, scope, token_type, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(userid) DO UPDATE SET
                 access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token,
                 expires_at = excluded.expires_at,
                 scope = excluded.scope,
                 token_type = excluded.token_type,
                 updated_at = excluded.updated_at""",
            (userid, body["access_token"], body["refresh_token"], expires_at, scope, body.get("token_type"), now),
        )
    return userid, expires_at, scope


def oauth_callback(payload, config, context):
    state = payload.get("state")
    log(f"oauth_callback: delivery {context.get('delivery_id')}, state {state!r}")
    expected = setting("WITHINGS_STATE", config, "expected_state")
    if expected and not hmac.compare_digest(str(state or ""), expected):
        raise PluginError("the state does not match WITHINGS_STATE: start the authorization again")
    code = payload.get("code")
    if not isinstance(code, str) or not code:
        raise PluginError("the callback has no code")
    params = {
        "grant_type": "authorization_code",
        "client_id": required("WITHINGS_CLIENT_ID", config, "client_id"),
        "client_secret": secret("WITHINGS_CLIENT_SECRET"),
        "code": code,
        "redirect_uri": required("WITHINGS_REDIRECT_URI", config, "redirect_uri"),
    }
    body = request_token(params, config)
    connection = database(config)
    try:
        userid, expires_at, scope = store(connection, body)
    finally:
        connection.close()
    log(f"authorized user {userid}; tokens stored, access token valid until {expires_at}")
    return {
        "status": "ok",
        "result": {"message": "OAuth successful!", "userid": userid, "scope": scope, "expires_at": expires_at},
        "events": [
            {"type": "withings.authorized", "payload": {"userid": userid, "scope": scope, "expires_at": expires_at}}
        ],
    }


def refresh(payload, config, context):
    connection = database(config)
    try:
        only = payload.get("userid")
        rows = connection.execute(
            "SELECT userid, refresh_token FROM tokens" + (" WHERE userid = ?" if only else ""),
            (str(only),) if only else (),
        ).fetchall()
        if not rows:
            raise PluginError("no stored Withings tokens: authorize first (README, re-authorizing Withings)")
        client_id = required("WITHINGS_CLIENT_ID", config, "client_id")
        client_secret = secret("WITHINGS_CLIENT_SECRET")
        refreshed, events = [], []
        for userid, refresh_token in rows:
            body = request_token(
                {
                    "grant_type": "refresh_token",
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "refresh_token": refresh_token,
                },
                config,
            )
            userid, expires_at, scope = store(connection, body)
            log(f"refreshed user {userid}; access token valid until {expires_at}")
            refreshed.append(userid)
            events.append(
                {"type": "withings.refreshed", "payload": {"userid": userid, "scope": scope, "expires_at": expires_at}}
            )
    finally:
        connection.close()
    return {"status": "ok", "result": {"refreshed": refreshed}, "events": events}


def health(payload, config, context):
    missing = [name for name in ("WITHINGS_CLIENT_ID", "WITHINGS_CLIENT_SECRET") if not os.environ.get(name)]
    connection = database(config)
    try:
        users = connection.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
    finally:
        connection.close()
    if missing:
        raise PluginError(f"not set: {', '.join(missing)}")
    return {"status": "ok", "result": {"users": users}}


COMMANDS = {"oauth_callback": oauth_callback, "refresh": refresh, "health": health}


def main():
    try:
        request = json.load(sys.stdin)
        handler = COMMANDS.get(request.get("command"))
        if handler is None:
            raise PluginError(f"unknown command {request.get('command')!r}")
        response = handler(request.get("payload") or {}, request.get("config") or {}, request.get("context") or {})
    except PluginError as error:
        log(f"error: {error}")
        response = {"status": "error", "error": str(error), "retry": error.retry}
    except sqlite3.Error as error:
        log(f"database error: {error}")
        response = {"status": "error", "error": f"database error: {error}", "retry": True}
    json.dump(response, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
