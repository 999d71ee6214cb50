"""A client of the Trainvisor coordinator's job, config and telemetry API, standard library only.

    from trainvisor import Coordinator, CoordinatorError
    c = Coordinator("http://127.0.0.1:8470", operator_token=..., operator_name="ana")
    job = c.job("cnn-oracle")                    # a name, a full id or an id prefix
    c.set_config(job["id"], {"training/optimizer/learning_rate": 0.01}, "too noisy")

Every method is one HTTP request and returns the coordinator's JSON reply (dicts and lists, as
the C++ protocol in core/fleet/api/ defines them). Calls on a job take its id; job() turns a name
or an id prefix into the job, with its id.

Tokens: a read sends the read, operator or worker token (the first given; none where reads are
public); cancel, requeue, freeze, unfreeze and a human's config write send the operator token and
are written as human:OPERATOR_NAME; a policy's config write (set_config(..., policy=NAME)) sends
the worker token and is written as policy:NAME.

Errors: the coordinator's refusal raises CoordinatorError with the HTTP status and the
coordinator's own message (which names the job, the key and the reason); a coordinator that
cannot be reached, or does not answer within `timeout` seconds, raises CoordinatorUnreachable
naming its URL. A call the client cannot make (a missing token) raises ValueError.

A Coordinator holds no connection between calls and may be shared between threads.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from . import routes


class CoordinatorError(RuntimeError):
    """The coordinator refused a call. `status` is the HTTP status (401 a wrong or missing token,
    404 an unknown job, 409 a frozen key or a finished job, 412 a decision a human's later write
    overrode, ...), `message` the coordinator's own words."""

    def __init__(self, status: int, message: str, method: str = "", url: str = ""):
        super().__init__(f"{method} {url}: {status}: {message}" if url else f"{status}: {message}")
        self.status = status
        self.message = message


class CoordinatorUnreachable(ConnectionError):
    """No answer came from the coordinator at `url` (refused, unresolvable, TLS, timeout)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot reach the coordinator at {url}: {reason}")
        self.url = url
        self.reason = reason


class Coordinator:
    """One coordinator, at `url` ("http://HOST:PORT" or "https://..."; `ca_file` verifies an
    https coordinator's certificate against that CA instead of the system's)."""

    def __init__(self, url: str, *, operator_token: str | None = None,
                 operator_name: str | None = None, worker_token: str | None = None,
                 read_token: str | None = None, ca_file: str | None = None,
                 timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"coordinator URL {url!r} is not http://HOST:PORT or https://...")
        if ca_file is not None and parsed.scheme != "https":
            raise ValueError(f"ca_file {ca_file!r} is for an https coordinator, not {url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout {timeout} is not a positive number of seconds")
        self.url = url.rstrip("/")
        self.operator_token = operator_token
        self.operator_name = operator_name
        self.worker_token = worker_token
        self.read_token = read_token
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    # Reads.
    def jobs(self, status: str | None = None) -> list[dict]:
        """Every job, or those in `status` ("pending", "running", "completed", ...)."""
        query = {"status": status} if status is not None else {}
        return self._call("GET", routes.JOBS, query=query, role="read")["jobs"]

    def job(self, ref: str) -> dict:
        """The job that `ref` names: its full id, its name or an id prefix of 4 characters or
        more. 404 when nothing matches, 409 (listing them) when several jobs do."""
        return self._call("GET", routes.target(routes.JOB_BY_REF, ref=ref), role="read")

    def telemetry(self, job: str, max_points: int = 500) -> dict:
        """The job's curve in step order, thinned to about `max_points` (0: every point kept;
        the latest evaluation and training step are always in it), with the config revision the
        hub holds (desired_revision) and the one the trainer last applied (applied)."""
        return self._call("GET", routes.target(routes.JOB_TELEMETRY, id=job),
                          query={"max_points": max_points}, role="read")

    def config(self, job: str) -> dict:
        """The job's config: revision, values (key path -> value), frozen prefixes, applied."""
        return self._call("GET", routes.target(routes.JOB_CONFIG, id=job), role="read")

    def config_log(self, job: str, after: int = 0, limit: int = 100) -> list[dict]:
        """The job's audit log after entry `after` (its seq), oldest first, at most `limit`
        entries (1000 at most): writes accepted or refused (accepted, refusal, count), freezes
        and unfreezes."""
        return self._call("GET", routes.target(routes.JOB_CONFIG_LOG, id=job),
                          query={"after": after, "limit": limit}, role="read")["entries"]

    # Writes.
    def set_config(self, job: str, writes: dict, reason: str = "", *, policy: str | None = None,
                   decided_from: int = 0) -> dict:
        """Writes `writes` (key path -> value) as one revision; returns {"revision", "actor"}.
        As the operator (human:OPERATOR_NAME) by default; with `policy`, as policy:POLICY with
        the worker token, and `decided_from` the config revision the decision was made from (a
        human's write of one of its keys after it refuses the write with 412). A float keeps its
        type: write 1.0, not 1, for a float knob."""
        if not isinstance(writes, dict) or not writes:
            raise ValueError("writes must be a non-empty dict of key path -> value")
        body = {"writes": writes, "reason": reason}
        if policy is None:
            return self._call("POST", routes.target(routes.JOB_CONFIG, id=job), body=body,
                              role="operator")
        body["policy"] = policy
        body["decided_from"] = decided_from
        return self._call("POST", routes.target(routes.JOB_CONFIG, id=job), body=body,
                          role="worker")

    def freeze(self, job: str, prefix: str) -> list[str]:
        """Holds every policy off the keys under `prefix` ("training/optimizer"); a human's
        writes still land. Returns the job's frozen prefixes."""
        return self._call("POST", routes.target(routes.JOB_CONFIG_FREEZE, id=job),
                          body={"prefix": prefix}, role="operator")["frozen"]

    def unfreeze(self, job: str, prefix: str) -> list[str]:
        return self._call("POST", routes.target(routes.JOB_CONFIG_UNFREEZE, id=job),
                          body={"prefix": prefix}, role="operator")["frozen"]

    def cancel(self, job: str) -> dict:
        """Cancels the job; {"was_running", "worker"}: the holder that stops its trainer."""
        return self._call("POST", routes.target(routes.JOB_CANCEL, id=job), body={},
                          role="operator")

    def requeue(self, job: str, from_checkpoint: bool = False) -> dict:
        """Makes a finished job pending again, from step 0 or from its checkpoint."""
        return self._call("POST", routes.target(routes.JOB_REQUEUE, id=job),
                          body={"from_checkpoint": from_checkpoint}, role="operator")

    # The one request path.
    def _headers(self, role: str) -> dict:
        if role == "operator":
            if not self.operator_token:
                raise ValueError("this call needs the operator token (operator_token)")
            headers = {routes.OPERATOR_TOKEN_HEADER: self.operator_token}
            if self.operator_name:
                headers[routes.OPERATOR_NAME_HEADER] = self.operator_name
            return headers
        if role == "worker":
            if not self.worker_token:
                raise ValueError("a policy's config write needs the worker token (worker_token)")
            return {routes.WORKER_TOKEN_HEADER: self.worker_token}
        for header, token in ((routes.READ_TOKEN_HEADER, self.read_token),
                              (routes.OPERATOR_TOKEN_HEADER, self.operator_token),
                              (routes.WORKER_TOKEN_HEADER, self.worker_token)):
            if token:
                return {header: token}
        return {}

    def _call(self, method: str, path: str, *, role: str, query: dict | None = None,
              body: dict | None = None):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = self._headers(role)
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=self._context) as reply:
                text = reply.read()
        except urllib.error.HTTPError as e:
            raise CoordinatorError(e.code, server_message(e), method, path) from None
        except urllib.error.URLError as e:
            raise CoordinatorUnreachable(self.url, str(e.reason)) from None
        except (socket.timeout, TimeoutError, ConnectionError) as e:
            raise CoordinatorUnreachable(self.url, str(e) or type(e).__name__) from None
        try:
            return json.loads(text or b"{}")
        except ValueError as e:
            raise CoordinatorError(200, f"the reply is not JSON ({e})", method, path) from None


def server_message(e: urllib.error.HTTPError) -> str:
    """The coordinator's {"error": ...} message, else the reply's text, else the reason."""
    body = e.read().decode("utf-8", "replace")
    try:
        message = json.loads(body).get("error")
    except (ValueError, AttributeError):
        message = None
    return message or body.strip() or str(e.reason)

