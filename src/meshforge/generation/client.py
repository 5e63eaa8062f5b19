"""The generic job-API client: submit -> persist the job id -> poll (or wait for a webhook) -> download.

Everything a provider adapter would otherwise repeat lives here, once:

* **retries** on 429, 5xx and connection errors, honouring ``Retry-After`` (seconds or HTTP date),
  exponential backoff with jitter, capped (``backoff_cap_s``) and never past the job's deadline;
* **a submit is retried only when the provider certainly did not take it** (429/5xx answers,
  connection refused). A submit whose answer was lost (read timeout, malformed body) is *not*
  resent: no provider documents an idempotency key, so resending could pay twice. The run fails
  cleanly instead and says so;
* **per-provider concurrency and request-rate limits** shared by every run in the process
  (jobs in flight hold a slot from submit to download);
* **persistence**: the job id is saved in the :class:`~meshforge.generation.store.JobStore` the
  moment submit returns; a later run with the same key polls that job instead of submitting. While
  it submits, the record says whether a request may be in flight (``in_flight``) and which process
  owns it (``owner``): a run stopped or killed while it only waited (a ``Retry-After``, the pacing)
  sent nothing, and a rerun submits again instead of reporting an unconfirmed submission;
* **downloads** with a size cap and format sniffing: HTML, an empty body or a truncated GLB is a
  failed (retried) attempt, never a crash; the API key is sent only to the provider's own origin,
  never to a pre-signed download host.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import random
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from meshforge.generation.providers import (
    GenerationRequest,
    JobHandle,
    JobStatus,
    OutputRef,
    Provider,
    ProviderError,
)
from meshforge.generation.owner import current_owner, idle_and_gone, owner_gone
from meshforge.generation.store import CLAIMABLE, JobStore, may_claim
from meshforge.io.sniff import detect

log = logging.getLogger("meshforge.generation")

MODEL_FORMATS = frozenset({"glb", "gltf", "obj", "stl", "ply", "off", "3mf"})
# Statuses after which a request was certainly not acted on, so even a paid submit may be resent.
_SAFE_TO_RESEND = frozenset({429, 500, 502, 503, 504})


# --- limits shared by every run of one process ---------------------------------------------------


class Limiter:
    """At most ``concurrency`` jobs in flight and ``rate`` requests per second (evenly spaced)."""

    def __init__(self, concurrency: int, rate: float) -> None:
        self.concurrency = max(1, int(concurrency))
        self.rate = float(rate)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._next = 0.0

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        if not self._slots.acquire(timeout=timeout):
            raise ProviderError("no free slot for this provider before the deadline", retryable=True, code="generation.timeout")
        try:
            yield
        finally:
            self._slots.release()

    def pace(self) -> float:
        """Wait for this request's turn under the rate limit; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait


_LIMITERS: dict[tuple[str, str, int, float], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}


def _key_lock(key: str) -> threading.Lock:
    """One lock per job key: two runs of the same input in one process never both submit."""
    with _LIMITERS_LOCK:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def limiter_for(provider: str, base_url: str, concurrency: int, rate: float) -> Limiter:
    key = (provider, base_url, int(concurrency), float(rate))
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = Limiter(concurrency, rate)
        return _LIMITERS[key]


# --- one provider's HTTP calls ---------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    polls: int = 0
    submissions: int = 0
    sleeps: list[float] = field(default_factory=list)  # every backoff delay chosen (for tests and the report)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class _ProviderWork:
    """What a job's HTTP calls and its runner both hold: the provider, its params, the client, a logger, a sleep."""

    def __init__(self, provider: Provider, params: Any, http: httpx.Client, logger: logging.Logger | None,
                 sleep: Callable[[float], None]) -> None:
        self.provider = provider
        self.params = params
        self.http = http
        self.log = logger or log
        self._sleep = sleep


class Api(_ProviderWork):
    """HTTP for one job against one provider: auth, timeouts, retries, pacing. Keys never leave here."""

    def __init__(self, http: httpx.Client, provider: Provider, params: Any, *, limiter: Limiter, deadline: float,
                 key: str | None, logger: logging.Logger | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(provider, params, http, logger, sleep)
        # Set by the job runner while it submits: told True just before a submit request goes out,
        # False once an answer (or a refused connection) proves the provider did not act on it.
        self.sending: Callable[[bool], None] | None = None
        self.limiter = limiter
        self.deadline = deadline
        self._key = key
        self.stats = Stats()
        self.base_url = provider.base_url
        self._origin = _origin(self.base_url)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._key and _origin(url) == self._origin:  # never hand the key to a download host
            headers.update(self.provider.auth_headers(self._key))
        return headers

    def _timeout(self) -> httpx.Timeout:
        left = max(0.05, self.deadline - time.monotonic())
        t = min(float(self.params.request_timeout_s), left)
        return httpx.Timeout(t, connect=min(10.0, t))

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        cap = float(self.params.backoff_cap_s)
        if retry_after is not None:
            delay = min(cap, retry_after)  # never earlier than asked (unless over the cap)
        else:
            base = min(cap, float(self.params.backoff_s) * (2 ** retry))
            delay = base * random.uniform(0.5, 1.0)  # "equal jitter": spread clients, keep a floor
        if time.monotonic() + delay > self.deadline:
            raise ProviderError("the job's deadline passed while retrying", retryable=False, code="generation.timeout")
        return delay

    def _pause(self, retry: int, last: ProviderError | None, phase: str | None = None) -> None:
        """Back off before try ``retry`` (1 = the first retry) and count it; ``phase`` logs the retry."""
        delay = self._backoff(retry - 1, last.retry_after if last else None)
        self.stats.retries += 1
        self.stats.sleeps.append(delay)
        if phase is not None:
            self.log.info("%s %s: retry %d in %.2f s (%s)", self.provider.name, phase, retry, delay, last)
        self._sleep(delay)

    def request(self, method: str, path: str, *, phase: str, headers: dict[str, str] | None = None,
                parse: bool = True, **kwargs: Any) -> Any:
        """One API call with retries. Returns parsed JSON (``parse``) or the response.

        ``phase="submit"`` resends only after answers that prove the provider did not act.
        """
        url = self.url(path)
        last: ProviderError | None = None
        for retry in range(int(self.params.max_retries) + 1):
            if retry:
                self._pause(retry, last, phase)
            if time.monotonic() > self.deadline:
                raise ProviderError("the job's deadline passed", retryable=False, code="generation.timeout")
            self.limiter.pace()
            self.stats.requests += 1
            submit = phase == "submit" and self.sending is not None
            if submit:
                self.sending(True)
            try:
                response = self.http.request(method, url, headers=self._headers(url, headers), timeout=self._timeout(), **kwargs)
            except RuntimeError:  # httpx refuses a closed client before sending (a step abandoned at its time limit)
                if not self.http.is_closed:
                    raise
                if submit:
                    self.sending(False)
                raise ProviderError(f"{phase}: not sent, the run has ended", retryable=False,
                                    code="generation.unavailable") from None
            except httpx.UnsupportedProtocol as exc:  # raised before anything is sent
                if submit:
                    self.sending(False)
                raise ProviderError(f"cannot send to {url}: {exc}", retryable=False, code="generation.unavailable") from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if submit:
                    self.sending(False)  # never reached the provider
                last = ProviderError(f"cannot connect ({type(exc).__name__})", retryable=True)
                continue
            except httpx.TransportError as exc:  # read timeout, dropped connection: the request may have been acted on
                last = ProviderError(f"{type(exc).__name__} during {phase}", retryable=True)
                if phase == "submit":
                    raise ProviderError(
                        f"the submit's answer was lost ({type(exc).__name__}); not resent, since the provider may have "
                        "started (and charged for) the job; use force = true to submit again",
                        retryable=False, code="generation.unavailable") from None
                continue
            if response.status_code >= 400:
                if submit:
                    self.sending(False)  # an error answer: the provider did not take the job
                body = _body(response)
                err = self.provider.error_from(response.status_code, body)
                err.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if not err.retryable or (phase == "submit" and response.status_code not in _SAFE_TO_RESEND
                                         and response.status_code < 500):
                    raise err
                last = err
                continue
            if not parse:
                return response
            try:
                return response.json()
            except ValueError:
                last = ProviderError(f"{phase}: HTTP {response.status_code} with a body that is not JSON", retryable=True)
                if phase == "submit":
                    raise ProviderError(
                        "the submit's answer is not JSON; not resent, since the provider may have started the job",
                        retryable=False, code="generation.unavailable") from None
                continue
        assert last is not None
        raise ProviderError(f"gave up after {int(self.params.max_retries) + 1} tries: {last.message}", retryable=False,
                            code=last.code if last.code != "generation.unavailable" else "generation.unavailable",
                            status=last.status)

    def download(self, ref: OutputRef) -> tuple[bytes, str]:
        """The model's bytes and sniffed format; HTML, empty, oversized or truncated bodies are retried, then fail."""
        if ref.data is not None:
            return _checked(ref.data, ref.format), detect(ref.data[:4096], f"model.{ref.format}") or ref.format
        assert ref.url is not None
        cap = int(float(self.params.max_download_mb) * 1024 * 1024)
        last: ProviderError | None = None
        for retry in range(int(self.params.max_retries) + 1):
            if retry:
                self._pause(retry, last)
            self.stats.requests += 1
            try:
                with self.http.stream("GET", ref.url, headers=self._headers(ref.url, None), timeout=self._timeout(),
                                      follow_redirects=True) as response:
                    if response.status_code >= 400:
                        last = ProviderError(f"download: HTTP {response.status_code}", retryable=True,
                                             code="generation.bad_download",
                                             retry_after=retry_after_seconds(response.headers.get("Retry-After")))
                        if response.status_code not in _SAFE_TO_RESEND:
                            raise ProviderError(f"download: HTTP {response.status_code}", retryable=False,
                                                code="generation.bad_download")
                        continue
                    declared = response.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > cap:
                        raise ProviderError(f"model is {int(declared) / 1e6:.1f} MB, over max_download_mb "
                                            f"({self.params.max_download_mb:g})", retryable=False, code="generation.bad_download")
                    buf = bytearray()
                    for chunk in response.iter_bytes():
                        buf += chunk
                        if len(buf) > cap:
                            raise ProviderError(f"model is over max_download_mb ({self.params.max_download_mb:g})",
                                                retryable=False, code="generation.bad_download")
                data = bytes(buf)
                return _checked(data, ref.format), detect(data[:4096], f"model.{ref.format}") or ref.format
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
            except httpx.TransportError as exc:  # includes "peer closed before the full body" (truncated)
                last = ProviderError(f"download failed ({type(exc).__name__})", retryable=True, code="generation.bad_download")
        assert last is not None
        raise ProviderError(f"gave up downloading after {int(self.params.max_retries) + 1} tries: {last.message}",
                            retryable=False, code="generation.bad_download")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _checked(data: bytes, expected: str) -> bytes:
    """Refuse bodies that are not a model: HTML error pages, JSON errors, truncated GLB (retryable)."""
    if not data:
        raise ProviderError("download is empty", retryable=True, code="generation.bad_download")
    fmt = detect(data[:4096], f"model.{expected}")
    if fmt == "html":
        raise ProviderError("download is an HTML page, not a model", retryable=True, code="generation.bad_download")
    if fmt == "glb":
        if len(data) < 12:
            raise ProviderError("GLB header is truncated", retryable=True, code="generation.bad_download")
        _magic, version, length = struct.unpack_from("<4sII", data, 0)
        if version != 2 or length != len(data):
            raise ProviderError(f"GLB is truncated or padded: header says {length} bytes, got {len(data)}",
                                retryable=True, code="generation.bad_download")
        return data
    if fmt not in MODEL_FORMATS:
        raise ProviderError(f"download is {fmt or 'unrecognised data'}, not a 3D model", retryable=True,
                            code="generation.bad_download")
    return data


# --- one job, start to finish ----------------------------------------------------------------------


@dataclass
class JobResult:
    data: bytes
    format: str
    provenance: dict[str, Any]


class JobRunner(_ProviderWork):
    """Runs one generation job through the state machine, persisting every transition."""

    def __init__(self, provider: Provider, params: Any, *, http: httpx.Client, store: JobStore, key: str,
                 models_dir: Path, logger: logging.Logger | None = None, attempt: int = 1,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(provider, params, http, logger, sleep)
        self.store = store
        self.key = key
        self.models_dir = models_dir
        self.attempt = attempt
        self.limiter = limiter_for(provider.name, provider.base_url, params.concurrency, params.requests_per_s)

    def _save(self, record: dict[str, Any], **changes: Any) -> dict[str, Any]:
        record.update(changes, updated_at=time.time())
        stored = self.store.load(self.key)
        if (stored is not None and stored.get("claim") != record.get("claim")
                and (stored.get("state") == "prepared" or int(stored.get("submissions", 0)) > int(record.get("submissions", 0)))):
            # Another run has claimed this key since (it resubmitted a failed job): a run still following
            # the older job must not write that job back over the new claim, or a rerun would pay again.
            return record
        self.store.save(self.key, record)
        return record

    def _claim(self, claim: Callable[..., bool] | None, fresh: dict[str, Any]) -> bool:
        """The store's atomic ``claim``; for a store without one, the same rule under this key's lock
        (enough within one process, which is all a store without ``claim`` can promise)."""
        stale_s = float(self.params.deadline_s)
        if callable(claim):
            return claim(self.key, fresh, stale_s, takeover=idle_and_gone)
        current = self.store.load(self.key)
        if current is not None and not may_claim(current, float(current.get("updated_at", 0)), stale_s, idle_and_gone):
            return False
        self.store.save(self.key, fresh)
        return True

    def run(self, req: GenerationRequest) -> JobResult:
        with _key_lock(self.key):
            return self._run(req)

    def _wait_for_other(self, deadline: float) -> dict[str, Any] | None:
        """Another process claimed this key: wait until it has a job id or a result (never submit twice)."""
        interval = float(self.params.poll_initial_s)
        while time.monotonic() < deadline:
            record = self.store.load(self.key)
            if record is None or record.get("state") != "prepared" or owner_gone(record):
                return record
            if time.time() - float(record.get("updated_at", 0)) >= float(self.params.deadline_s):
                return record  # its owner died with the submission unconfirmed: the caller says so
            self._sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(float(self.params.poll_max_s), interval * 1.5)
        raise ProviderError("another run is submitting this same job and has not finished by the deadline",
                            retryable=False, code="generation.timeout")

    def _run(self, req: GenerationRequest) -> JobResult:
        started = time.monotonic()
        deadline = started + float(self.params.deadline_s)
        record = None if self.params.force else self.store.load(self.key)
        claim = getattr(self.store, "claim", None)
        if (record is not None and record.get("state") == "prepared" and not self.params.force
                and time.time() - float(record.get("updated_at", 0)) < float(self.params.deadline_s)
                and not owner_gone(record)):
            record = self._wait_for_other(deadline)  # a live run is submitting it: follow that run
        record = self._settle(record)
        reused = self._reuse(record)
        if reused is not None:
            return reused
        api_key = None
        if self.provider.needs_key:
            env = self.provider.key_env
            api_key = os.environ.get(env) if env else None
            if not api_key:
                raise ProviderError(f"no API key: set the environment variable {env or '(api_key_env is empty)'}",
                                    retryable=False, code="generation.no_api_key")
        api = Api(self.http, self.provider, self.params, limiter=self.limiter, deadline=deadline, key=api_key,
                  logger=self.log, sleep=self._sleep)
        prior_submissions = int(record.get("submissions", 0)) if record else 0
        resume = record if _resumable(record) else None
        left = max(0.0, deadline - time.monotonic())
        with self.limiter.slot(timeout=left):
            tries = 0
            while True:
                tries += 1
                if resume is not None:
                    record = resume
                    handle = JobHandle(provider=self.provider.name, job_id=str(record["job_id"]), extra=record.get("extra") or {})
                    status: JobStatus | None = None
                    self.log.info("%s: resuming job %s (%s) instead of submitting again", self.provider.name, handle.job_id, record["state"])
                    resume = None
                else:
                    fresh = {"key": self.key, "provider": self.provider.name, "attempt": self.attempt,
                             "submissions": prior_submissions, "state": "prepared", "in_flight": False,
                             "owner": current_owner(), "claim": secrets.token_hex(8), "updated_at": time.time()}
                    if not self.params.force and not self._claim(claim, fresh):
                        # Another run got here first: follow its job, or claim again once it has ended
                        # without one. Nothing is submitted without a successful claim.
                        other = self._settle(self._wait_for_other(deadline))
                        reused = self._reuse(other)
                        if reused is not None:
                            return reused
                        tries -= 1
                        if _resumable(other):
                            resume = other
                        elif not (other is None or other.get("state") in CLAIMABLE or idle_and_gone(other)):
                            raise ProviderError(
                                f"an earlier run left this job {other.get('state')} without a model to reuse; "
                                "rerun with force = true to submit anew", retryable=False, code="generation.bad_download")
                        elif time.monotonic() > deadline:
                            raise ProviderError("another run holds this job at the deadline", retryable=False,
                                                code="generation.timeout")
                        continue
                    # Ours now (the claim wrote it, or force = true asked for it): written as is, so
                    # every later save of this submission passes _save's newer-claim check.
                    self.store.save(self.key, fresh)
                    record = fresh
                    handle, status = self._submit(req, api, record)
                    prior_submissions = record["submissions"]
                if status is None:
                    status = self._wait(handle, api, record, deadline)
                if status.state == "succeeded" or (status.state == "downloaded" and status.outputs):
                    break
                self._save(record, state=status.state, raw_state=status.raw_state, error=status.error)
                if status.state == "failed" and tries <= int(self.params.resubmit_failed):
                    self.log.warning("%s: job %s failed (%s); submitting again", self.provider.name, record.get("job_id"), status.error)
                    continue
                code = "generation.failed" if status.state == "failed" else "generation.canceled"
                raise ProviderError(f"the provider reports the job {status.raw_state or status.state}"
                                    + (f": {status.error}" if status.error else ""), retryable=False, code=code)
            try:
                data, fmt = self._download(status, api)
            except ProviderError as exc:
                if not record.get("job_id"):  # a synchronous answer: no job to download again, a rerun submits
                    self._save(record, state="failed", error=exc.message)
                raise
        path = self._keep(data, fmt)
        cost = dict(status.cost) if status.cost else self.provider.cost(req)
        record = self._save(record, state="downloaded", path=str(path), sha256=hashlib.sha256(data).hexdigest(),
                            bytes=len(data), format=fmt, cost=cost, raw_state=status.raw_state)
        return JobResult(data=data, format=fmt, provenance=self._provenance(record, api, reused=False,
                                                                            seconds=time.monotonic() - started))

    # --- steps of the state machine --------------------------------------------------------------

    def _settle(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """What an earlier run's unfinished submission means before this run may submit.

        Stopped while it only waited (a ``Retry-After``, the pacing; :func:`idle_and_gone`): nothing
        was sent, and the record is returned for :meth:`SqliteJobStore.claim` to take over
        atomically. Stopped with a request in flight, or with its answer lost: the provider may have
        accepted (and billed) it, and no provider documents an idempotency key, so submitting again
        could pay twice. That is said, for a person to decide.
        """
        if record is None or self.params.force or idle_and_gone(record):
            return record
        if record.get("state") in ("prepared", "unconfirmed"):
            raise ProviderError(
                f"a submission for this job was started at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(record.get('updated_at', 0))))}"
                " by a run that stopped before the provider's answer was recorded; it may have been accepted and billed. "
                "Not submitted again: check the provider's dashboard, then rerun with force = true to submit anew "
                "(in a batch: meshforge batch retry <batch folder> --id <job id> --resubmit)",
                retryable=False, code="generation.unconfirmed_submission")
        return record

    def _reuse(self, record: dict[str, Any] | None) -> JobResult | None:
        if not record or record.get("state") != "downloaded" or not record.get("path"):
            return None
        path = Path(record["path"])
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            return None
        self.log.info("%s: reusing job %s (same input, provider and parameters)", self.provider.name, record.get("job_id"))
        return JobResult(data=data, format=str(record.get("format") or "glb"),
                         provenance=self._provenance(record, None, reused=True, seconds=0.0))

    def _submit(self, req: GenerationRequest, api: Api, record: dict[str, Any]) -> tuple[JobHandle, JobStatus | None]:
        api.stats.submissions += 1
        # Each submit request is recorded as in flight before it is sent, and as answered once an
        # error answer proves the provider did not act: a kill at any instant leaves the truth on disk.
        api.sending = lambda flag: self._save(record, in_flight=flag)
        try:
            result = self.provider.submit(req, api)
        except ProviderError as exc:
            # An answer (4xx: bad key, bad input, quota; 5xx after the retries) or a connection that was
            # never made means nothing was accepted: a later run may submit again. A request that went out
            # unanswered (a dropped connection, a timeout after sending, a body that is not an answer)
            # may have been accepted and billed: "unconfirmed", never resent by itself.
            answered = exc.status is not None or record.get("in_flight") is False  # Tripo answers errors with 200
            self._save(record, state="failed" if answered else "unconfirmed", error=exc.message)
            raise
        except BaseException:  # Ctrl-C, a SIGTERM turned into an exception
            if record.get("in_flight") is False:
                self._save(record, state="stopped", error="stopped before its submit request was sent")
            raise  # in flight: "prepared" stays, and a rerun reports the unconfirmed submission
        finally:
            api.sending = None
        submissions = int(record.get("submissions", 0)) + 1
        if isinstance(result, JobStatus):  # synchronous provider: the answer is the model
            self._save(record, state="succeeded" if result.state in ("succeeded", "downloaded") else result.state,
                       job_id=None, submissions=submissions, submitted_at=time.time(), in_flight=False)
            return JobHandle(provider=self.provider.name, job_id=""), result
        # Persist before anything else can go wrong: a restart now polls instead of paying again.
        self._save(record, state="submitted", job_id=result.job_id, extra=dict(result.extra), submissions=submissions,
                   submitted_at=time.time(), in_flight=False)
        self.log.info("%s: submitted job %s", self.provider.name, result.job_id)
        return result, None

    def _wait(self, handle: JobHandle, api: Api, record: dict[str, Any], deadline: float) -> JobStatus:
        interval = float(self.params.poll_initial_s)
        webhook_key = f"webhook:{self.provider.name}:{handle.job_id}"
        last_poll = 0.0 if not self.params.webhook else time.monotonic()
        while True:
            status: JobStatus | None = None
            if self.params.webhook:
                status = status_from_record(self.store.load(webhook_key))
            now = time.monotonic()
            if status is None and (not self.params.webhook or now - last_poll >= float(self.params.webhook_poll_s)):
                api.stats.polls += 1
                status = self.provider.poll(handle, api)
                last_poll = now
            if status is not None:
                if status.state != record.get("state") or status.progress != record.get("progress"):
                    self._save(record, state=status.state, raw_state=status.raw_state, progress=status.progress)
                if status.terminal:
                    return status
                if status.eta_s:
                    interval = max(float(self.params.poll_initial_s), min(float(self.params.poll_max_s), 0.5 * status.eta_s))
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProviderError(f"job {handle.job_id} still {record.get('state')} at the deadline "
                                    f"({self.params.deadline_s:g} s); a later run resumes it", retryable=False,
                                    code="generation.timeout")
            step = interval if not self.params.webhook else min(interval, 0.5)
            self._sleep(min(left, step * random.uniform(0.8, 1.2)))
            interval = min(float(self.params.poll_max_s), interval * 1.5)

    def _download(self, status: JobStatus, api: Api) -> tuple[bytes, str]:
        outputs = [o for o in status.outputs if o.url or o.data is not None]
        if not outputs:
            raise ProviderError("the job succeeded but names no model to download", retryable=False, code="generation.bad_download")
        outputs.sort(key=lambda o: (o.format != "glb", o.format))
        return api.download(outputs[0])

    def _keep(self, data: bytes, fmt: str) -> Path:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        safe = self.key.replace(":", "-")
        path = self.models_dir / f"{safe}.{fmt}"
        tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}-{threading.get_ident()}.part")  # two runs may follow one job
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # "downloaded" is recorded only after the bytes are on disk
        return path

    def _provenance(self, record: dict[str, Any], api: Api | None, *, reused: bool, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider.name,
            "job_id": record.get("job_id"),
            "job_key": self.key,
            "attempt": self.attempt,
            "reused": reused,
            "cost": None if reused else record.get("cost"),
            "submissions": int(record.get("submissions", 0)),
            "sha256": record.get("sha256"),
            "provider_state": record.get("raw_state"),
        }
        if getattr(self.params, "seed", -1) >= 0:
            out["seed"] = int(self.params.seed) + self.attempt - 1
        if api is not None:
            out.update(requests=api.stats.requests, retries=api.stats.retries, polls=api.stats.polls,
                       seconds=round(seconds, 3))
        return out


def _resumable(record: dict[str, Any] | None) -> bool:
    """A record of a job the provider took: poll (or download) it again instead of paying again."""
    return bool(record and record.get("job_id")
                and record.get("state") in ("submitted", "queued", "running", "succeeded", "downloaded"))


def status_from_record(record: dict[str, Any] | None) -> JobStatus | None:
    """A webhook record (saved by the receiver) back into a JobStatus."""
    if not record or "state" not in record:
        return None
    outputs = tuple(OutputRef(format=str(o.get("format", "glb")), url=o.get("url")) for o in record.get("outputs", ()))
    return JobStatus(state=record["state"], raw_state=str(record.get("raw_state", "")), progress=record.get("progress"),
                     outputs=outputs, error=record.get("error"))


def status_to_record(status: JobStatus) -> dict[str, Any]:
    return {
        "state": status.state,
        "raw_state": status.raw_state,
        "progress": status.progress,
        "error": status.error,
        "outputs": [{"format": o.format, "url": o.url} for o in status.outputs if o.url],
        "received_at": time.time(),
    }


__all__ = ["Api", "JobResult", "JobRunner", "Limiter", "limiter_for", "retry_after_seconds", "status_from_record",
           "status_to_record"]
