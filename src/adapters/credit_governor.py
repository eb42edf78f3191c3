"""The CoinMarketCap credit governor over `limits` storages (memcached or in-process)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from limits.storage import MemcachedStorage, MemoryStorage, Storage
from pymemcache.exceptions import MemcacheClientError

from src.adapters.coinmarketcap.key_info import KeyInfo
from src.domain.errors import BudgetSpent
from src.domain.model import Plan, Purpose
from src.domain.ports import Clock, CreditGovernor

logger = logging.getLogger(__name__)

BASIC_DAILY_CREDITS = 333  # cmc-api.md §8: ~10,000 a month
BASIC_CALLS_PER_MINUTE = 30
REQUEST_RESERVE_SHARE = 0.10  # of the day's credits, kept for symbols with nothing stored
MIN_REFRESH_INTERVAL_SECONDS = 60.0  # CoinMarketCap updates a quote about once a minute
KEY_INFO_EVERY_SECONDS = 300.0
LIMIT_CODES = frozenset({1008, 1009, 1010, 1011})
ELSEWHERE = "elsewhere"  # credits CoinMarketCap counted today that no reservation here did

_PREFIX = "coinquote:credits:v1"
_LOCAL_MEMO_SECONDS = 30.0  # how long a process trusts the shared key-info note it last read
_SHARED_RETRY_SECONDS = 10.0  # after a storage failure, count in-process this long
# memcached reads an expiry above 30 days as an absolute Unix time: stay below it.
_MAX_TTL_SECONDS = 29 * 86_400
_T = TypeVar("_T")
_IN_PROCESS_NOTES: weakref.WeakKeyDictionary[Storage, dict[str, tuple[str, float]]] = \
    weakref.WeakKeyDictionary()
_IN_PROCESS_LOCK = threading.Lock()


def build_storage(memcached_servers: Sequence[str]) -> Storage:
    """The `limits` storage: memcached (every process and replica) when servers are given."""
    if memcached_servers:
        # Short timeouts: a slow memcached must not hold a request; the governor then counts
        # in-process for a while (see LimitsCreditGovernor).
        return MemcachedStorage("memcached://" + ",".join(memcached_servers),
                                connect_timeout=0.5, timeout=0.5)
    return MemoryStorage()


def budget_namespace(base_url: str, api_key: str) -> str:
    """A short, stable name for the budget of one key on one host (the key itself never shows)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:12]


class _Board:
    """Counters (the storage's atomic incr with expiry) and small notes, in one `limits` storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        with _IN_PROCESS_LOCK:
            # Notes live beside their storage, so governors sharing one storage share them.
            self._notes = _IN_PROCESS_NOTES.setdefault(storage, {})
        self._lock = _IN_PROCESS_LOCK

    @property
    def _client(self) -> Any | None:
        # MemcachedStorage's public `storage` property is its (thread-local) pymemcache client:
        # limits has no decrement or plain set, which giving back and notes need.
        return self.storage.storage if isinstance(self.storage, MemcachedStorage) else None

    def add(self, key: str, amount: int, ttl: float) -> int:
        if isinstance(self.storage, MemcachedStorage):
            for _ in range(3):
                try:
                    # No expiry side key: nothing here reads it; it would cost a write per key.
                    return self.storage.incr(key, int(ttl), amount=amount,
                                             set_expiration_key=False)
                except MemcacheClientError:
                    # A value that is not a counter (memcached has no authentication): it
                    # counts as absent and is replaced, else every process counts for itself.
                    if self._replace_junk(key, amount, ttl):
                        return amount
            raise MemcacheClientError(f"{key} stays unusable as a counter")
        return self.storage.incr(key, int(ttl), amount=amount)

    def _replace_junk(self, key: str, amount: int, ttl: float) -> bool:
        """Put `amount` in place of a junk value, unless another process changed it first."""
        client = self._client
        value, token = client.gets(key)
        if value is None or _count(value) is not None:
            return False  # gone or a counter again meanwhile: increment it
        return bool(client.cas(key, str(amount), token, expire=int(ttl), noreply=False))

    def give_back(self, key: str, amount: int) -> None:
        if (client := self._client) is not None:
            try:
                client.decr(key, amount, noreply=False)
            except MemcacheClientError:
                pass  # junk in place of the counter: nothing to give back, the next add resets it
        else:
            self.storage.decr(key, amount)

    def counts(self, keys: Sequence[str]) -> list[int]:
        if (client := self._client) is not None:
            found = client.get_many(list(keys))
            return [_count(found.get(key)) or 0 for key in keys]
        return [self.storage.get(key) for key in keys]

    def notes(self, keys: Sequence[str]) -> list[str | None]:
        if (client := self._client) is not None:
            found = client.get_many(list(keys))
            return [_text(found.get(key)) for key in keys]
        now = time.time()
        with self._lock:
            return [value if (entry := self._notes.get(key)) and (value := entry[0]) and
                    entry[1] > now else None for key in keys]

    def write_note(self, key: str, value: str, ttl: float) -> None:
        ttl = int(min(max(ttl, 1), _MAX_TTL_SECONDS))
        if (client := self._client) is not None:
            client.set(key, value, expire=ttl, noreply=False)
        else:
            with self._lock:
                self._notes[key] = (value, time.time() + ttl)


class LimitsCreditGovernor(CreditGovernor):
    """Spends CoinMarketCap's plan in the order the contract fixes (§4), for every process at once.

    The plan: CMC_DAILY_CREDITS / CMC_CALLS_PER_MINUTE when configured, else `/v1/key/info`
    (read by one process every few minutes and shared; the read is reserved against the minute
    like any call), else the Basic plan (333 credits a day, 30 calls a minute).

    Counters live in a `limits` storage: memcached when configured, so every worker and replica
    shares them, in-process otherwise. Calls are counted per calendar minute, credits per UTC day
    and purpose; a reservation is counted first and given back when it breaks a rule, so that
    racing processes can never overspend together. When the storage fails the governor counts
    in-process for a few seconds and tries again; it never raises anything but BudgetSpent.

    The rules, with D the day's credits and M the minute's calls:
    - requests (symbols with nothing fresh stored) may spend every credit and every call left;
    - a reserve of 10 % of D (at least 1) and of M (rounded down) is theirs alone;
    - refresh-ahead may spend up to D minus that reserve; its interval is derived so that the
      rounds spread over the rest of the UTC day what is left after the reserve and after the
      conversions' unspent share, never below 60 s;
    - conversions may spend at most CONVERT_CREDIT_SHARE of D, less whatever requests spent
      beyond their reserve (requests that need more take it from conversions first, then from
      refresh-ahead, whose interval then grows), and never the reserve.
    CoinMarketCap's verdicts (`honour`) stop every call until they lapse: 1008/1011 until the
    next minute, 1009 until the daily reset (read from key info when possible, else the next
    UTC midnight), 1010 until the monthly reset.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        read_key_info: Callable[[], KeyInfo] | None = None,
        daily_credits: int | None = None,
        calls_per_minute: int | None = None,
        convert_credit_share: float = 0.5,
        refresh_interval_seconds: float | None = None,
        key_info_every_seconds: float = KEY_INFO_EVERY_SECONDS,
        namespace: str = "",
    ) -> None:
        # One budget per CoinMarketCap key (see budget_namespace): deployments or test stacks
        # sharing a memcached with other keys never count against each other.
        self._prefix = f"{_PREFIX}:{namespace}" if namespace else _PREFIX
        self.clock = clock
        self.read_key_info = read_key_info
        self.daily_credits = daily_credits
        self.calls_per_minute = calls_per_minute
        self.convert_credit_share = convert_credit_share
        self.refresh_interval_seconds = refresh_interval_seconds
        self.key_info_every_seconds = key_info_every_seconds
        self._shared = _Board(storage)
        in_process = isinstance(storage, MemoryStorage)
        self._local = self._shared if in_process else _Board(MemoryStorage())
        self._shared_down_until = 0.0
        self._seen: dict[str, int] = {}  # the shared day counters last read, by key
        self._memo: tuple[float, KeyInfo | None] | None = None
        # The day of this thread's last reservation per purpose: a refund after UTC midnight
        # gives back to that day, not to today's count (which would then miss a credit).
        self._reserved_on = threading.local()

    # -- the port ----------------------------------------------------------------------------

    def reserve(self, purpose: Purpose, credits: int) -> None:
        self._on_board(lambda board: self._reserve(board, Purpose(purpose), credits))

    def refund(self, purpose: Purpose, credits: int) -> None:
        purpose = Purpose(purpose)
        days = getattr(self._reserved_on, "days", {})
        key = days.pop(purpose, None) or self._day_key(self.clock.now(), purpose)
        self._on_board(lambda board: board.give_back(key, credits))

    def honour(self, upstream_code: int, retry_after: float | None = None) -> None:
        if upstream_code not in LIMIT_CODES:
            return
        now = self.clock.now()
        hinted = now + timedelta(seconds=retry_after) if retry_after else None
        if upstream_code in (1008, 1011):
            scope, until, known = "minute", max(_next_minute(now), hinted or now), True
        elif upstream_code == 1009:
            reset = self._daily_reset(now, fresh=True)
            scope, until, known = "day", hinted or reset[0], hinted is not None or reset[1]
        else:
            reset = self._monthly_reset(now, fresh=True)
            scope, until, known = "month", hinted or reset[0], hinted is not None or reset[1]
        logger.warning("CoinMarketCap answered %d: no calls until %s", upstream_code, _iso(until))
        self._on_board(
            lambda board: self._record_verdict(board, scope, upstream_code, until, now, known))

    def plan(self) -> Plan:
        if self.daily_credits is not None and self.calls_per_minute is not None:
            return Plan(self.daily_credits, self.calls_per_minute, "configured")
        info = self._key_info()
        daily = self.daily_credits or (info and info.daily_credits)
        per_minute = self.calls_per_minute or (info and info.calls_per_minute)
        source = "key_info" if info is not None and (daily or per_minute) else "default"
        return Plan(daily or BASIC_DAILY_CREDITS, per_minute or BASIC_CALLS_PER_MINUTE, source)

    def refresh_interval(self, symbols: int) -> float:
        if self.refresh_interval_seconds is not None:
            return self.refresh_interval_seconds
        now = self.clock.now()
        plan = self.plan()
        used = self._on_board(lambda board: self._used(board, now))
        per_round = max(1, math.ceil(symbols / 100))
        left = plan.daily_credits - _request_reserve(plan) - sum(used.values()) \
            - max(0, self._convert_cap(plan, used) - used[Purpose.CONVERT])
        seconds_left = (_next_midnight(now) - now).total_seconds()
        rounds = left // per_round
        if rounds < 1:
            return max(MIN_REFRESH_INTERVAL_SECONDS, seconds_left)
        return max(MIN_REFRESH_INTERVAL_SECONDS, seconds_left / rounds)

    def usage(self) -> dict:
        now = self.clock.now()
        plan = self.plan()
        used, calls, verdicts = self._on_board(lambda board: (
            self._used(board, now), board.counts([self._minute_key(now)])[0],
            self._verdicts(board)))
        total = sum(used.values())
        blocked = [(until, code) for until, code in verdicts if until > now]
        return {
            "plan": {"daily_credits": plan.daily_credits, "calls_per_minute": plan.calls_per_minute,
                     "source": plan.source},
            "today": {
                "date": now.date().isoformat(),
                "credits_used": total,
                "credits_left": max(0, plan.daily_credits - total),
                "by_purpose": {p.value: used[p] for p in Purpose},
                "spent_elsewhere": used[ELSEWHERE],
                "request_reserve": _request_reserve(plan),
                "convert_cap": max(0, self._convert_cap(plan, used)),
                "resets_at": self._daily_reset(now, fresh=False)[0],
            },
            "minute": {"calls": calls, "calls_left": max(0, plan.calls_per_minute - calls)},
            "blocked": (
                {"upstream_code": max(blocked)[1], "until": max(blocked)[0]} if blocked else None
            ),
        }

    # -- reservations -------------------------------------------------------------------------

    def _reserve(self, board: _Board, purpose: Purpose, credits: int) -> None:
        now = self.clock.now()
        for until, code in self._verdicts(board):
            if until > now:
                raise _spent(until - now, f"CoinMarketCap refused calls ({code}) until "
                             f"{_iso(until)}", code)
        plan = self.plan()
        minute_key = self._minute_key(now)
        minute_reserve = 0 if purpose is Purpose.REQUEST else plan.calls_per_minute // 10
        allowed_calls = plan.calls_per_minute - minute_reserve
        if board.add(minute_key, 1, ttl=120) > allowed_calls:
            board.give_back(minute_key, 1)
            raise _spent(_next_minute(now) - now, "no more calls to CoinMarketCap this minute")
        day_key = self._day_key(now, purpose)
        refusal = self._day_refusal(purpose, credits, plan, self._used(board, now))
        if refusal is None:
            board.add(day_key, credits, ttl=2 * 86_400)
            # Counted first, checked after: of two processes racing for the last credits,
            # at most one keeps them.
            refusal = self._day_refusal(purpose, 0, plan, self._used(board, now))
            if refusal is not None:
                board.give_back(day_key, credits)
            elif credits:
                self._reserved_on.days = {**getattr(self._reserved_on, "days", {}),
                                          purpose: day_key}
        if refusal is not None:
            board.give_back(minute_key, 1)
            raise _spent(self._daily_reset(now, fresh=False)[0] - now, refusal)

    def _day_refusal(self, purpose: Purpose, credits: int, plan: Plan,
                     used: dict[Purpose | str, int]) -> str | None:
        total = sum(used.values()) + credits
        if purpose is Purpose.REQUEST:
            return None if total <= plan.daily_credits else "today's credits are used"
        if total > plan.daily_credits - _request_reserve(plan):
            return "what is left of today's credits is kept for symbols with nothing stored"
        converted = used[Purpose.CONVERT] + credits
        if purpose is Purpose.CONVERT and converted > self._convert_cap(plan, used):
            return f"conversions may use {self.convert_credit_share:.0%} of the day's credits"
        return None

    def _convert_cap(self, plan: Plan, used: dict[Purpose | str, int]) -> int:
        overflow = max(0, used[Purpose.REQUEST] - _request_reserve(plan))
        return math.floor(plan.daily_credits * self.convert_credit_share) - overflow

    def _used(self, board: _Board, now: datetime) -> dict[Purpose | str, int]:
        """Today's credits by purpose, and under ELSEWHERE those CoinMarketCap counted that we
        did not (its key info said so: another client of the key, counters lost to a restart)."""
        kinds: list[Purpose | str] = [*Purpose, ELSEWHERE]
        keys = [self._day_key(now, k) for k in kinds]
        counts = board.counts(keys)
        if board is self._shared:
            self._seen = dict(zip(keys, counts, strict=True))
        return dict(zip(kinds, counts, strict=True))

    def _count_on_locally(self) -> None:
        """Bring this process's counters up to the shared ones it last saw: counting from zero
        when memcached fails, every process would get the whole day again."""
        counts = self._local.counts(list(self._seen))
        for (key, seen), local in zip(self._seen.items(), counts, strict=True):
            if seen > local:
                self._local.add(key, seen - local, ttl=2 * 86_400)

    def _catch_up(self, board: _Board, info: KeyInfo, asked: datetime) -> None:
        """Count what CoinMarketCap says was spent today beyond our own count, as ELSEWHERE."""
        now = self.clock.now()
        same_day = info.daily_reset is None or abs(
            (info.daily_reset - _next_midnight(now)).total_seconds()) < 60
        # Not comparable to ours: a plan whose day is not the UTC day, or a count asked for
        # before UTC midnight (yesterday's, maybe).
        if info.credits_used_today is None or not same_day or asked.date() != now.date():
            return
        missed = info.credits_used_today - sum(self._used(board, now).values())
        if missed > 0:
            logger.warning("CoinMarketCap counted %d credit(s) today that coinquote did not",
                           missed)
            board.add(self._day_key(now, ELSEWHERE), missed, ttl=2 * 86_400)

    def _minute_key(self, now: datetime) -> str:
        return f"{self._prefix}:minute:{now:%Y%m%dT%H%M}"

    def _day_key(self, now: datetime, kind: Purpose | str) -> str:
        return f"{self._prefix}:day:{now:%Y%m%d}:{kind}"

    # -- CoinMarketCap's verdicts ---------------------------------------------------------------

    _SCOPES = ("minute", "day", "month")

    def _verdicts(self, board: _Board) -> list[tuple[datetime, int]]:
        keys = [f"{self._prefix}:verdict:{scope}" for scope in self._SCOPES]
        return [verdict for note in board.notes(keys) if (verdict := _verdict_from_note(note))]

    def _record_verdict(self, board: _Board, scope: str, code: int, until: datetime,
                        now: datetime, known: bool) -> None:
        """Share a verdict. A reset CoinMarketCap told (key info, Retry-After) replaces the one
        in force; a guessed one (the next UTC midnight or month) only extends it."""
        key = f"{self._prefix}:verdict:{scope}"
        (current,) = (_verdict_from_note(note) for note in board.notes([key]))
        if not known and current is not None and current[0] >= until:
            return
        board.write_note(key, json.dumps([until.timestamp(), code]),
                         (until - now).total_seconds() + 60)

    def _daily_reset(self, now: datetime, *, fresh: bool) -> tuple[datetime, bool]:
        """When today's credits come back, and whether CoinMarketCap said so (else a guess)."""
        info = self._key_info(force=fresh)
        if info is not None and info.daily_reset is not None and info.daily_reset > now:
            return info.daily_reset, True
        return _next_midnight(now), False

    def _monthly_reset(self, now: datetime, *, fresh: bool) -> tuple[datetime, bool]:
        """When the month's credits come back, and whether CoinMarketCap said so."""
        info = self._key_info(force=fresh)
        if info is not None and info.monthly_reset is not None and info.monthly_reset > now:
            return info.monthly_reset, True
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return datetime(year, month, 1, tzinfo=UTC), False

    # -- the plan from /v1/key/info --------------------------------------------------------------

    def _key_info(self, *, force: bool = False) -> KeyInfo | None:
        """The key info every process shares: re-read by one process once it is older than
        `key_info_every_seconds` (or at once when `force`, after a 1009)."""
        if self.read_key_info is None:
            return None
        now = self.clock.now().timestamp()
        if not force and self._memo is not None and now - self._memo[0] < _LOCAL_MEMO_SECONDS:
            return self._memo[1]
        info = self._on_board(lambda board: self._shared_key_info(board, now, force))
        if info is None and self._memo is not None:
            info = self._memo[1]  # keep the last plan known rather than fall back to the default
        self._memo = (now, info)
        return info

    def _shared_key_info(self, board: _Board, now: float, force: bool) -> KeyInfo | None:
        key = f"{self._prefix}:key-info"
        (note,) = board.notes([key])
        known = _key_info_from_note(note) if note else None
        if known is not None and not force and now - known[0] < self.key_info_every_seconds:
            return known[1]
        # One reader per 30 s across processes, except after a 1009 (every reader pays a call
        # of the minute all the same), and for a process that knows no plan at all: the Basic
        # plan's guess may be ten times what the key allows.
        slot = f"{self._prefix}:key-info-read:{int(now // 30)}"
        minute_key = self._minute_key(self.clock.now())
        last_known = self._memo[1] if self._memo is not None else None
        per_minute = (self.calls_per_minute or (last_known and last_known.calls_per_minute)
                      or BASIC_CALLS_PER_MINUTE)
        knows_a_plan = known is not None or last_known is not None
        if not force and knows_a_plan and board.add(slot, 1, ttl=60) != 1:
            return known[1] if known else None
        if board.add(minute_key, 1, ttl=120) > per_minute:
            board.give_back(minute_key, 1)
            return known[1] if known else None
        asked = self.clock.now()
        try:
            info = self.read_key_info()
        except Exception as exc:  # noqa: BLE001 - the plan falls back; nothing may reach a request
            logger.warning("CoinMarketCap key info not read (%s); keeping the plan known so far",
                           type(exc).__name__)
            return known[1] if known else None
        board.write_note(key, _key_info_note(now, info), _MAX_TTL_SECONDS)
        self._catch_up(board, info, asked)
        return info

    # -- storage failures ----------------------------------------------------------------------

    def _on_board(self, operation: Callable[[_Board], _T]) -> _T:
        """Run `operation` on the shared storage; on its failure, in-process for a while."""
        if self._local is not self._shared and time.monotonic() >= self._shared_down_until:
            try:
                return operation(self._shared)
            except BudgetSpent:
                raise
            except Exception as exc:  # noqa: BLE001 - the port promises nothing but BudgetSpent
                logger.warning("credit counters unreachable (%s); counting in this process for"
                               " %d s", type(exc).__name__, _SHARED_RETRY_SECONDS)
                self._shared_down_until = time.monotonic() + _SHARED_RETRY_SECONDS
            self._count_on_locally()
        return operation(self._local)


def _count(value: bytes | None) -> int | None:
    """A memcached counter's value (decimal digits, maybe space-padded), or None for junk."""
    try:
        count = int(value) if value is not None else None
    except ValueError:
        return None
    # memcached counters are unsigned 64-bit: anything else it refuses to increment.
    return count if count is not None and 0 <= count < 2**64 else None


def _text(value: bytes | None) -> str | None:
    try:
        return value.decode() if value is not None else None
    except UnicodeDecodeError:
        return None  # not a note of ours


def _request_reserve(plan: Plan) -> int:
    return min(plan.daily_credits, max(1, math.ceil(plan.daily_credits * REQUEST_RESERVE_SHARE)))


def _spent(wait: timedelta, why: str, code: int | None = None) -> BudgetSpent:
    seconds = max(1, math.ceil(wait.total_seconds()))
    return BudgetSpent(f"the CoinMarketCap credit budget is spent: {why}; try again in {seconds} s",
                       retry_after=seconds, upstream_code=code)


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _next_midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _verdict_from_note(note: str | None) -> tuple[datetime, int] | None:
    # memcached has no authentication: a note that is not ours is no verdict.
    try:
        until, code = json.loads(note) if note else (None, None)
        return (datetime.fromtimestamp(float(until), UTC), int(code)) if until is not None else None
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def _key_info_note(read_at: float, info: KeyInfo) -> str:
    return json.dumps({
        "read_at": read_at, "daily": info.daily_credits, "minute": info.calls_per_minute,
        "monthly": info.monthly_credits, "used": info.credits_used_today,
        "daily_reset": info.daily_reset.timestamp() if info.daily_reset else None,
        "monthly_reset": info.monthly_reset.timestamp() if info.monthly_reset else None,
    })


def _key_info_from_note(note: str) -> tuple[float, KeyInfo] | None:
    try:
        data = json.loads(note)
        return float(data["read_at"]), KeyInfo(
            daily_credits=_count_or_none(data["daily"]),
            calls_per_minute=_count_or_none(data["minute"]),
            monthly_credits=_count_or_none(data["monthly"]),
            credits_used_today=_count_or_none(data["used"]),
            daily_reset=_time_or_none(data["daily_reset"]),
            monthly_reset=_time_or_none(data["monthly_reset"]),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def _count_or_none(value: Any) -> int | None:
    # memcached has no authentication: a figure of the wrong type is unknown, not a crash later.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _time_or_none(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
