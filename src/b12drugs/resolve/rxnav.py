"""RxNav REST client: RxNorm lookups over HTTP for the resolver and ``kb verify``.

Terms of use of the public service (https://rxnav.nlm.nih.gov): no more than 20
requests per second per IP address, answers should be cached for 12-24 hours, and an
over-eager client is answered with HTTP 403.  This client therefore

* rate-limits every real HTTP attempt with a token bucket shared by all threads of the
  process (one bucket per base URL, default 20 requests/s);
* caches every successful JSON answer on disk (requests-cache on SQLite, in the user's
  cache directory, 24 h by default), so a second run of the same batch sends nothing;
* retries connection errors, timeouts, 5xx, 429 and 403 with exponential backoff and
  jitter, honouring ``Retry-After`` (capped);
* sends identical in-flight queries once (single flight) and stops calling a dead
  service for a while (circuit breaker);
* in offline mode answers only from the cache.

Products that show RxNorm data must carry NLM's attribution statement,
:data:`b12drugs.NLM_ATTRIBUTION`.

Why our own retry loop rather than urllib3's ``Retry`` mounted on the adapter:
urllib3 retries below requests, so (1) body-level faults (a truncated or invalid JSON
body, a reset while the body is read) surface after its loop has returned and would
need a second retry layer with its own counting; (2) its retries would bypass the
process-wide rate limiter and it honours any ``Retry-After`` without an upper bound;
(3) the circuit breaker must see the outcome of a whole lookup, not of one attempt.
One small loop here applies one policy to every fault.  Header parsing is still
urllib3's (:meth:`urllib3.util.Retry.parse_retry_after`).

Answers are parsed defensively: numbers arrive as strings, an absent key means "no
result", and anything malformed becomes :class:`RxNavResponseError` for that lookup
(a :class:`~b12drugs.errors.SourceUnavailable`), never a crash.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from ..config import RxNavConfig
from ..errors import SourceUnavailable
from ..models import normalize_ndc
from .source import AtcClass, Concept, History, NdcInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth another attempt: throttling (403 is RxNav's answer to too many
#: requests, 429 the standard one) and server-side failures.
RETRY_STATUSES = frozenset({403, 429, 500, 502, 503, 504})

#: Upper bound on a server's ``Retry-After`` we are willing to sleep (seconds).
MAX_RETRY_AFTER = 30.0

#: Upper bound on one backoff sleep (seconds).
MAX_BACKOFF = 10.0

#: Answers kept in memory per client (decoded JSON), on top of the disk cache.
MEMO_SIZE = 20_000

#: Largest answer we read (bytes); RxNav answers are a few KB, class members < 1 MB.
MAX_BODY = 8 * 1024 * 1024


class RxNavResponseError(SourceUnavailable):
    """RxNav answered, but not with something we can read (bad JSON, odd shape, 4xx)."""

    def __init__(self, message: str, path: str):
        self.path = path
        super().__init__(f"{message} ({path})")


# --------------------------------------------------------------------------- limiter


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``.

    Each caller reserves the next free slot under a lock and sleeps outside it, so
    threads queue fairly.  With ``burst=1`` (the default) requests are spaced by
    ``1/rate`` seconds and no one-second window holds more than ``rate + 1`` of them.
    """

    def __init__(self, rate: float, burst: int = 1):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst)
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = time.monotonic()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = rate

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the time slept."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            time.sleep(wait)
        return wait


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, rate: float) -> RateLimiter:
    """The process-wide limiter of one service (keyed by base URL).

    Every client of the same service shares it, so two clients in one process cannot
    together exceed the limit.  The most recently configured rate applies.
    """
    key = base_url.rstrip("/")
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(rate)
        elif limiter.rate != rate:
            limiter.set_rate(rate)
        return limiter


class _LimitedAdapter(HTTPAdapter):
    """Takes a rate-limiter token for every request that really goes on the wire.

    Mounted below requests-cache, so answers served from the cache cost no token.
    """

    def __init__(self, limiter: RateLimiter, pool_size: int):
        super().__init__(pool_connections=2, pool_maxsize=pool_size, max_retries=Retry(0))
        self.limiter = limiter

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.limiter.acquire()
        return super().send(request, *args, **kwargs)


# --------------------------------------------------------------------------- breaker


class CircuitBreaker:
    """Fail fast after ``threshold`` consecutive failed lookups, for ``reset_after`` s.

    After that pause one probe is let through (half-open); its success closes the
    circuit, its failure opens it again.
    """

    def __init__(self, threshold: int, reset_after: float):
        self.threshold = threshold
        self.reset_after = reset_after
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def allow(self) -> bool:
        """May a lookup go to the network now?"""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or time.monotonic() - self._opened_at < self.reset_after:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                if self._opened_at is None or self._probing:
                    log.warning("RxNav circuit opened after %d failed lookups", self._failures)
                self._opened_at = time.monotonic()
            self._probing = False

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_after - (time.monotonic() - self._opened_at))


# --------------------------------------------------------------------------- single flight


class SingleFlight:
    """Identical concurrent calls run once; the others wait for and share the result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[Any]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            fut = self._calls.get(key)
            leader = fut is None
            if fut is None:
                fut = self._calls[key] = Future()
        if not leader:
            return fut.result()  # type: ignore[no-any-return]
        try:
            result = fn()
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            with self._lock:
                self._calls.pop(key, None)


# --------------------------------------------------------------------------- parsing helpers


def _dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or ``None`` when a key is absent or a level is not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _as_list(value: Any) -> list[Any]:
    """RxNav lists: absent -> [], a single object -> [obj], a list -> itself."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return ""


def _digits(value: Any) -> str:
    s = _str(value)
    return s if s.isdigit() else ""


def _float(value: Any) -> float | None:
    try:
        return float(_str(value))
    except ValueError:
        return None


def _unique(items: Iterable[T], key: Callable[[T], str]) -> list[T]:
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k and k not in seen:
            seen.add(k)
            out.append(item)
    return out


@dataclass(frozen=True)
class Candidate:
    """One approximate-match candidate (best rank per RxCUI)."""

    rxcui: str
    name: str
    rank: int
    score: float | None


def default_cache_path() -> Path:
    """``<user cache dir>/b12drugs/rxnav.sqlite`` (platformdirs)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("b12drugs")) / "rxnav.sqlite"


def _cacheable(response: requests.Response) -> bool:
    """Only successful answers holding a JSON object are worth keeping."""
    if response.status_code != 200:
        return False
    try:
        return isinstance(json.loads(response.content), dict)
    except (ValueError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------- client


class RxNavClient:
    """A :class:`~b12drugs.resolve.source.ConceptSource` over the RxNav REST API.

    Thread-safe: one instance serves every worker of a batch.  Call :meth:`close`
    (or use it as a context manager) to release the session, the cache file and the
    worker threads.
    """

    name = "rxnav"

    def __init__(
        self,
        config: RxNavConfig | None = None,
        *,
        cache: bool = True,
        max_retry_after: float = MAX_RETRY_AFTER,
    ):
        self.config = config or RxNavConfig()
        self.base_url = self.config.base_url.rstrip("/")
        self.limiter = limiter_for(self.base_url, self.config.rate_limit)
        self.breaker = CircuitBreaker(self.config.failure_threshold, self.config.reset_after)
        self.max_retry_after = max_retry_after
        self._flight = SingleFlight()
        # Parsed answers of this client's lifetime (one run): many products share an
        # ingredient, whose ATC answer is then read once, not once per product.
        self._memo: dict[str, Any] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._version: str | None = None
        self._version_known = False
        self.cache_path: Path | None = None
        self.session = self._make_session(cache)
        adapter = _LimitedAdapter(self.limiter, pool_size=self.config.max_workers + 2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        from .. import __version__

        self.session.headers["User-Agent"] = f"b12drugs/{__version__} (requests)"
        self.session.headers["Accept"] = "application/json"

    def _make_session(self, cache: bool) -> requests.Session:
        if not cache:
            if self.config.offline:
                raise SourceUnavailable("RxNav offline mode needs the cache")
            return requests.Session()
        import requests_cache

        path = Path(self.config.cache_path) if self.config.cache_path else default_cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_path = path
        ttl = self.config.cache_ttl_hours
        session: requests.Session = requests_cache.CachedSession(
            cache_name=str(path),
            backend="sqlite",
            expire_after=timedelta(hours=ttl) if ttl > 0 else requests_cache.DO_NOT_CACHE,
            allowable_codes=(200,),
            allowable_methods=("GET",),
            filter_fn=_cacheable,
            stale_if_error=self.config.offline,
            wal=True,
        )
        return session

    # -- lifecycle -------------------------------------------------------------------

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Worker threads for batch lookups (``max_workers`` from the config); every
        request they make still goes through the shared rate limiter."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.max_workers, thread_name_prefix="rxnav"
                )
            return self._executor

    def map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> Iterator[T]:
        """``fn`` over ``items`` on the worker threads, results in order."""
        return self.executor.map(fn, items)

    def close(self) -> None:
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        self.session.close()

    def __enter__(self) -> RxNavClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cache_info(self) -> dict[str, Any]:
        """Where the cache lives and how many answers it holds (for ``rxnorm cache stats``)."""
        count = 0
        cache = getattr(self.session, "cache", None)
        if cache is not None:
            count = len(cache.responses)
        return {"path": str(self.cache_path) if self.cache_path else None, "responses": count}

    def clear_cache(self) -> None:
        self._memo.clear()
        cache = getattr(self.session, "cache", None)
        if cache is not None:
            cache.clear()

    # -- transport -------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, str] | None = None, raw_query: str = "") -> str:
        query = urlencode(params or {}, quote_via=quote)
        if raw_query:
            query = f"{query}&{raw_query}" if query else raw_query
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get_json(
        self, path: str, params: Mapping[str, str] | None = None, raw_query: str = ""
    ) -> Any:
        """GET ``base_url + path`` and return the decoded JSON.

        ``raw_query`` is appended as is (RxNav wants ``tty=IN+MIN+PIN`` with literal
        ``+``; percent-encoded ``%2B`` has been seen to fail).
        Raises :class:`SourceUnavailable` (or :class:`RxNavResponseError`) when no
        usable answer could be had.
        """
        url = self._url(path, params, raw_query)
        hit = self._memo.get(url)
        if hit is not None:
            return hit
        data = self._flight.do(url, lambda: self._fetch(url, path))
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()  # crude bound; the disk cache still holds everything
        self._memo[url] = data
        return data

    def _cached_only(self, url: str) -> requests.Response | None:
        resp = self.session.get(url, timeout=self.config.timeout, only_if_cached=True)  # type: ignore[call-arg]
        if resp.status_code != 200:  # only 200s are cached: this is requests-cache's 504
            return None
        return resp

    def _fetch(self, url: str, path: str) -> Any:
        if self.config.offline:
            resp = self._cached_only(url)
            if resp is None:
                raise SourceUnavailable(f"RxNav offline mode: no cached answer for {path}")
            return self._decode(resp, path)
        if not self.breaker.allow():
            resp = self._cached_only(url) if self.cache_path else None
            if resp is not None:
                return self._decode(resp, path)
            raise SourceUnavailable(
                f"RxNav is failing, not retried for {self.breaker.retry_in():.0f} s "
                f"(circuit open); {path} not checked"
            )
        error: SourceUnavailable | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                if self.breaker.is_open:
                    break  # opened meanwhile by other lookups (or we are the probe)
                self._sleep_before_retry(attempt, error)
            try:
                resp = self.session.get(url, timeout=self.config.timeout)
            except requests.Timeout:
                error = SourceUnavailable(
                    f"RxNav timed out after {self.config.timeout:g} s ({path})"
                )
                continue
            except requests.RequestException as exc:
                error = SourceUnavailable(f"RxNav could not be reached ({path}): {_short(exc)}")
                continue
            if resp.status_code == 200:
                try:
                    data = self._decode(resp, path)
                except RxNavResponseError as exc:
                    error = exc
                    continue
                self.breaker.success()
                return data
            if resp.status_code in RETRY_STATUSES:
                error = _StatusError(resp.status_code, path, _retry_after(resp))
                continue
            # Other 4xx: the request itself is wrong; retrying will not help, and it
            # says nothing about the service's health.
            self.breaker.success()
            raise RxNavResponseError(f"RxNav answered HTTP {resp.status_code}", path)
        self.breaker.failure()
        assert error is not None
        raise error

    def _sleep_before_retry(self, attempt: int, error: SourceUnavailable | None) -> None:
        base = self.config.backoff * (2 ** (attempt - 1))
        delay = min(MAX_BACKOFF, base) + random.uniform(0, self.config.backoff)
        if isinstance(error, _StatusError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_retry_after))
        if delay > 0:
            time.sleep(delay)

    @staticmethod
    def _decode(resp: requests.Response, path: str) -> Any:
        if resp.status_code != 200:
            raise RxNavResponseError(f"RxNav answered HTTP {resp.status_code}", path)
        body = resp.content
        if len(body) > MAX_BODY:
            raise RxNavResponseError(f"RxNav answer larger than {MAX_BODY} bytes", path)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RxNavResponseError(f"RxNav answered invalid JSON: {exc}", path) from exc
        if not isinstance(data, dict):
            raise RxNavResponseError(
                f"unexpected RxNav answer (a JSON {type(data).__name__}, not an object)", path
            )
        return data

    def _object(self, path: str, data: Any) -> dict[str, Any]:
        """The top level of every RxNav answer is an object; anything else is odd."""
        if not isinstance(data, dict):
            raise RxNavResponseError(
                f"unexpected RxNav answer (a {type(data).__name__}, not an object)", path
            )
        return data

    def _shape(self, path: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
        """``value`` when absent or of the expected type, else an error naming ``what``."""
        if value is None or isinstance(value, kind):
            return value
        raise RxNavResponseError(f"unexpected RxNav answer: {what} has the wrong shape", path)

    # -- ConceptSource -------------------------------------------------------------------

    def data_version(self) -> str | None:
        """The RxNorm release RxNav serves (``/version.json``), asked once per client."""
        if not self._version_known:
            path = "/version.json"
            data = self._object(path, self.get_json(path))
            self._version = _str(data.get("version")) or None
            self._version_known = True
        return self._version

    def properties(self, rxcui: str) -> Concept | None:
        if not _digits(rxcui):
            return None
        path = f"/rxcui/{rxcui}/properties.json"
        data = self._object(path, self.get_json(path))
        props = self._shape(path, data.get("properties"), dict, "properties")
        if not props:
            return None
        cui = _digits(props.get("rxcui")) or rxcui
        return Concept(rxcui=cui, name=_str(props.get("name")), tty=_str(props.get("tty")))

    def ingredients(self, rxcui: str) -> list[Concept]:
        """IN, MIN and PIN concepts related to ``rxcui`` (active concepts only)."""
        if not _digits(rxcui):
            return []
        path = f"/rxcui/{rxcui}/related.json"
        data = self._object(path, self.get_json(path, raw_query="tty=IN+MIN+PIN"))
        group = self._shape(path, data.get("relatedGroup"), dict, "relatedGroup")
        out: list[Concept] = []
        for cg in _as_list(_dig(group, "conceptGroup")):
            if not isinstance(cg, dict):
                continue
            for cp in _as_list(cg.get("conceptProperties")):
                if not isinstance(cp, dict):
                    continue
                cui = _digits(cp.get("rxcui"))
                tty = _str(cp.get("tty")) or _str(cg.get("tty"))
                if cui and tty in ("IN", "MIN", "PIN"):
                    out.append(Concept(rxcui=cui, name=_str(cp.get("name")), tty=tty, active=True))
        return _unique(out, key=lambda c: c.rxcui)

    def _id_group(self, path: str, params: Mapping[str, str]) -> list[str]:
        data = self._object(path, self.get_json(path, params))
        group = self._shape(path, data.get("idGroup"), dict, "idGroup")
        ids = [_digits(x) for x in _as_list(_dig(group, "rxnormId"))]
        return _unique(ids, key=lambda s: s)

    def rxcuis_by_name(self, name: str) -> list[str]:
        name = name.strip()
        if not name:
            return []
        return self._id_group("/rxcui.json", {"name": name[:500], "search": "2"})

    def rxcuis_by_ndc(self, ndc11: str) -> list[str]:
        try:
            ndc = normalize_ndc(ndc11)
        except ValueError:
            return []
        return self._id_group("/rxcui.json", {"idtype": "NDC", "id": ndc})

    def ndc_status(self, ndc11: str) -> NdcInfo | None:
        try:
            ndc = normalize_ndc(ndc11)
        except ValueError:
            return None
        path = "/ndcstatus.json"
        data = self._object(path, self.get_json(path, {"ndc": ndc}))
        st = self._shape(path, data.get("ndcStatus"), dict, "ndcStatus")
        if not st:
            return None
        status = _str(st.get("status")).upper()
        if not status:
            return None
        history: list[str] = []
        for h in _as_list(st.get("ndcHistory")):
            if isinstance(h, dict):
                # The concept the NDC points to now, else the one it pointed to then.
                history.append(_digits(h.get("activeRxcui")) or _digits(h.get("originalRxcui")))
        return NdcInfo(
            ndc11=_digits(st.get("ndc11")) or ndc,
            status=status,
            rxcui=_digits(st.get("rxcui")) or None,
            history_rxcuis=tuple(_unique(history, key=lambda s: s)),
        )

    def history(self, rxcui: str) -> History | None:
        if not _digits(rxcui):
            return None
        path = f"/rxcui/{rxcui}/historystatus.json"
        data = self._object(path, self.get_json(path))
        hist = self._shape(path, data.get("rxcuiStatusHistory"), dict, "rxcuiStatusHistory")
        if not hist:
            return None
        status = _str(_dig(hist, "metaData", "status"))
        if not status:
            return None
        derived = _dig(hist, "derivedConcepts")
        remapped = [
            Concept(
                rxcui=_digits(r.get("remappedRxCui")),
                name=_str(r.get("remappedName")),
                tty=_str(r.get("remappedTTY")),
                active=_str(r.get("remappedActive")).upper() == "YES" or None,
            )
            for r in _as_list(_dig(derived, "remappedConcept"))
            if isinstance(r, dict)
        ]
        ingredients = [
            Concept(rxcui=_digits(r.get("ingredientRxcui")), name=_str(r.get("ingredientName")),
                    tty="IN")
            for r in _as_list(_dig(derived, "ingredientConcept"))
            if isinstance(r, dict)
        ]
        return History(
            rxcui=rxcui,
            status=status,
            remapped_to=tuple(_unique(remapped, key=lambda c: c.rxcui)),
            ingredients=tuple(_unique(ingredients, key=lambda c: c.rxcui)),
        )

    def atc_classes(self, rxcui: str) -> list[AtcClass]:
        """ATC classes of the concept itself (rows of combination products that merely
        contain it are dropped), each class once."""
        if not _digits(rxcui):
            return []
        path = "/rxclass/class/byRxcui.json"
        data = self._object(
            path, self.get_json(path, {"rxcui": rxcui, "relaSource": "ATC"})
        )
        info = self._shape(path, data.get("rxclassDrugInfoList"), dict, "rxclassDrugInfoList")
        out: list[AtcClass] = []
        for row in _as_list(_dig(info, "rxclassDrugInfo")):
            if not isinstance(row, dict):
                continue
            if _digits(_dig(row, "minConcept", "rxcui")) != rxcui:
                continue
            source = _str(row.get("relaSource"))
            if source and source.upper() != "ATC":
                continue
            item = row.get("rxclassMinConceptItem")
            if not isinstance(item, dict):
                continue
            class_id = _str(item.get("classId")).upper()
            if class_id:
                out.append(AtcClass(class_id, _str(item.get("className")), rxcui))
        return _unique(out, key=lambda c: c.class_id)

    def class_members(self, class_id: str, ttys: str = "IN") -> list[Concept]:
        class_id = class_id.strip().upper()
        if not class_id.isalnum():
            return []
        path = "/rxclass/classMembers.json"
        words = ttys.replace(",", " ").replace("+", " ").split()
        tty_query = "+".join(t for t in words if t.isalpha())
        data = self._object(
            path,
            self.get_json(path, {"classId": class_id, "relaSource": "ATC"},
                          raw_query=f"ttys={tty_query}" if tty_query else ""),
        )
        group = self._shape(path, data.get("drugMemberGroup"), dict, "drugMemberGroup")
        out = []
        for member in _as_list(_dig(group, "drugMember")):
            mc = _dig(member, "minConcept")
            if isinstance(mc, dict) and _digits(mc.get("rxcui")):
                out.append(Concept(rxcui=_digits(mc.get("rxcui")), name=_str(mc.get("name")),
                                   tty=_str(mc.get("tty"))))
        return _unique(out, key=lambda c: c.rxcui)

    # -- extras (RxNav only) ---------------------------------------------------------------

    def approximate_term(self, term: str, max_entries: int = 5) -> list[Candidate]:
        """Candidates for free text, best rank per RxCUI, ordered by rank then score.

        RxNav's scores have no absolute meaning; only compare them within one answer.
        """
        term = term.strip()
        if not term:
            return []
        path = "/approximateTerm.json"
        data = self._object(
            path, self.get_json(path, {"term": term[:500], "maxEntries": str(max_entries)})
        )
        group = self._shape(path, data.get("approximateGroup"), dict, "approximateGroup")
        best: dict[str, Candidate] = {}
        for row in _as_list(_dig(group, "candidate")):
            if not isinstance(row, dict):
                continue
            cui = _digits(row.get("rxcui"))
            rank = _digits(row.get("rank"))
            if not cui or not rank:
                continue
            cand = Candidate(cui, _str(row.get("name")), int(rank), _float(row.get("score")))
            old = best.get(cui)
            if old is None or (cand.rank, -(cand.score or 0)) < (old.rank, -(old.score or 0)):
                # keep a name if the better row lacks one
                if old is not None and not cand.name:
                    cand = Candidate(cui, old.name, cand.rank, cand.score)
                best[cui] = cand
            elif not old.name and cand.name:
                best[cui] = Candidate(cui, cand.name, old.rank, old.score)
        return sorted(best.values(), key=lambda c: (c.rank, -(c.score or 0), c.rxcui))

    def spelling_suggestions(self, name: str) -> list[str]:
        name = name.strip()
        if not name:
            return []
        path = "/spellingsuggestions.json"
        data = self._object(path, self.get_json(path, {"name": name[:500]}))
        group = self._shape(path, data.get("suggestionGroup"), dict, "suggestionGroup")
        items = [_str(s) for s in _as_list(_dig(group, "suggestionList", "suggestion"))]
        return _unique(items, key=lambda s: s)


class _StatusError(SourceUnavailable):
    def __init__(self, status: int, path: str, retry_after: float | None):
        self.status = status
        self.retry_after = retry_after
        what = "throttled the client" if status in (403, 429) else "failed"
        super().__init__(f"RxNav {what} (HTTP {status}) ({path})")


def _retry_after(resp: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta or HTTP date), ``None`` if absent
    or unreadable."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except Exception:  # urllib3 raises InvalidHeader for garbage
        return None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
