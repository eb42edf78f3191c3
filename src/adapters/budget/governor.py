"""SharedCreditGovernor: the CreditGovernor port over a Board (memcached, the database, or this
process), deciding by the spending rules of src/domain/spending.py."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from limits.storage import MemoryStorage

from src.adapters.budget import notes, periods
from src.adapters.budget.board import MAX_TTL_SECONDS, Board, LimitsBoard
from src.adapters.budget.usage import usage_report
from src.adapters.coinmarketcap.key_info import KeyInfo
from src.domain.errors import BudgetSpent, LimitVerdict
from src.domain.model import Plan, Purpose
from src.domain.ports import Clock, CreditGovernor
from src.domain.spending import DAY_SECONDS, BudgetDay, SpendingPolicy, Spent

logger = logging.getLogger(__name__)

BASIC_DAILY_CREDITS = 333  # ~10,000 a month, CoinMarketCap's free plan
BASIC_CALLS_PER_MINUTE = 30
KEY_INFO_EVERY_SECONDS = 300.0
ELSEWHERE = "elsewhere"  # credits CoinMarketCap counted today that no reservation here did

_PREFIX = "coinquote:credits:v1"
_LOCAL_MEMO_SECONDS = 30.0  # how long a process trusts the shared key-info note it last read
_SHARED_RETRY_SECONDS = 10.0  # after a storage failure, no call (and local figures) this long
_DAY_TTL = 2 * 86_400
_HOT_NOTE_SECONDS = 3_600.0  # a refresher gone this long no longer needs credits
_T = TypeVar("_T")


class SharedCreditGovernor(CreditGovernor):
    """Spends CoinMarketCap's plan in the order of src/domain/spending.py, for every process.

    The plan: CMC_DAILY_CREDITS / CMC_CALLS_PER_MINUTE when configured, else `/v1/key/info`
    (read by one process every few minutes and shared; the read is reserved against the minute
    like any call), else the Basic plan (333 credits a day, 30 calls a minute). The budget's day
    ends at the daily reset key info reports, else at UTC midnight.

    Counts live on a `board` shared by every process: the deployment's database (without one,
    in tests, memcached or this process).
    Calls are counted per calendar minute, credits per day and purpose; a reservation is counted
    first and given back when it breaks a rule, so that racing processes can never overspend
    together, and settled to what CoinMarketCap charged once the call is answered. When the
    board fails, no call is allowed for a few seconds (processes counting alone would overspend
    together); /usage meanwhile shows this process's figures, on from the counts it last read
    there. It never raises anything but BudgetSpent.

    CoinMarketCap's verdicts (`honour`) stop every call until they lapse: a minute's until the
    next minute (or its Retry-After), a day's until the daily reset (read from key info when
    possible, else the next UTC midnight), a month's until the monthly reset.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        board: Board | None = None,
        read_key_info: Callable[[], KeyInfo] | None = None,
        daily_credits: int | None = None,
        calls_per_minute: int | None = None,
        convert_credit_share: float = 0.5,
        refresh_interval_seconds: float | None = None,
        max_age_seconds: float | None = None,
        refresh_ahead: bool = False,
        key_info_every_seconds: float = KEY_INFO_EVERY_SECONDS,
        namespace: str = "",
    ) -> None:
        # One budget per CoinMarketCap key (see budget_namespace): deployments or test stacks
        # sharing a board with other keys never count against each other.
        self._prefix = f"{_PREFIX}:{namespace}" if namespace else _PREFIX
        self.clock = clock
        self.read_key_info = read_key_info
        self.daily_credits = daily_credits
        self.calls_per_minute = calls_per_minute
        self.convert_credit_share = convert_credit_share
        self.refresh_interval_seconds = refresh_interval_seconds
        self.max_age_seconds = max_age_seconds
        self.refresh_ahead = refresh_ahead
        self.key_info_every_seconds = key_info_every_seconds
        self._shared = board or LimitsBoard(MemoryStorage())
        self._local = self._shared if not self._shared.shared else LimitsBoard(MemoryStorage())
        self._shared_down_until = 0.0
        self._seen: dict[str, int] = {}  # the shared day counters last read, by key
        self._memo: tuple[float, KeyInfo | None] | None = None
        self._hot_written: tuple[float, int] | None = None
        self._warned_plans: set[tuple[int, int]] = set()
        # The day of this thread's last reservation per purpose: a settlement after the reset
        # goes to that day, not to today's count (which would then miss a credit).
        self._reserved_on = threading.local()

    # -- the port ----------------------------------------------------------------------------

    def reserve(self, purpose: Purpose, credits: int) -> None:
        self._on_board(lambda board: self._reserve(board, Purpose(purpose), credits))

    def settle(self, purpose: Purpose, reserved: int, charged: int | None) -> None:
        purpose = Purpose(purpose)
        days = getattr(self._reserved_on, "days", {})
        key = days.pop(purpose, None) or self._day_key(self.clock.now(), purpose)
        if charged is None or charged == reserved:
            return
        if charged < reserved:
            self._on_board(lambda board: board.give_back(key, reserved - charged))
        else:
            # Charged already: counted whatever the rules say, so that /usage tells the truth.
            logger.info("CoinMarketCap charged %d credit(s) for a call reserved at %d",
                        charged, reserved)
            self._on_board(lambda board: board.add(key, charged - reserved, ttl=_DAY_TTL))

    def honour(self, verdict: LimitVerdict) -> None:
        now = self.clock.now()
        hinted = now + timedelta(seconds=verdict.retry_after) if verdict.retry_after else None
        if verdict.scope == "minute":
            until, known = max(periods.next_minute(now), hinted or now), True
        elif verdict.scope == "day":
            reset = self._daily_reset(now, fresh=True)
            until, known = hinted or reset[0], hinted is not None or reset[1]
        else:
            reset = self._monthly_reset(now, fresh=True)
            until, known = hinted or reset[0], hinted is not None or reset[1]
        code = verdict.upstream_code or 0
        logger.warning("CoinMarketCap answered %d: no calls until %s", code, periods.iso(until))
        self._on_board(lambda board: self._record_verdict(
            board, verdict.scope, code, until, now, known))

    def plan(self) -> Plan:
        if self.daily_credits is not None and self.calls_per_minute is not None:
            plan = Plan(self.daily_credits, self.calls_per_minute, "configured")
        else:
            info = self._key_info()
            daily = self.daily_credits or (info and info.daily_credits)
            per_minute = self.calls_per_minute or (info and info.calls_per_minute)
            source = "key_info" if info is not None and (daily or per_minute) else "default"
            plan = Plan(daily or BASIC_DAILY_CREDITS, per_minute or BASIC_CALLS_PER_MINUTE,
                        source)
        self._warn_if_too_small(plan)
        return plan

    def refresh_interval(self, symbols: int) -> float:
        self._note_hot(symbols)
        if self.refresh_interval_seconds is not None:
            return self.refresh_interval_seconds
        now = self.clock.now()
        spent = self._on_board(lambda board: self._spent(board, now))
        return self.policy().refresh_interval(spent, self._day(now), symbols)

    def usage(self) -> dict[str, Any]:
        now = self.clock.now()
        spent, calls, verdicts, hot = self._on_board(lambda board: (
            self._spent(board, now), board.counts([self._minute_key(now)])[0],
            self._verdicts(board), self._hot_symbols(board)))
        return usage_report(now, self.policy(), self.plan().source, self._day(now), spent,
                            calls, verdicts, hot)

    def policy(self, plan: Plan | None = None) -> SpendingPolicy:
        """The spending rules for `plan` (default: the plan in force)."""
        plan = plan or self.plan()
        return SpendingPolicy(plan.daily_credits, plan.calls_per_minute,
                              self.convert_credit_share, self.max_age_seconds,
                              self.refresh_interval_seconds)

    # -- reservations -------------------------------------------------------------------------

    def _reserve(self, board: Board, purpose: Purpose, credits: int) -> None:
        now = self.clock.now()
        for until, code in self._verdicts(board):
            if until > now:
                raise periods.budget_spent(
                    until - now, f"CoinMarketCap refused calls ({code}) until"
                    f" {periods.iso(until)}", code)
        if board is not self._shared:
            # The shared counts cannot be read: every process would count alone, together past
            # the plan (and what a call brings back could not be stored either). No call until
            # they can; stored and cached quotes are served meanwhile.
            raise periods.budget_spent(timedelta(seconds=_SHARED_RETRY_SECONDS),
                                       "the shared credit counters cannot be reached")
        policy = self.policy()
        minute_key = self._minute_key(now)
        if board.add(minute_key, 1, ttl=120) > policy.calls_allowed(purpose):
            board.give_back(minute_key, 1)
            raise periods.budget_spent(periods.next_minute(now) - now,
                                       "no more calls to CoinMarketCap this minute")
        day = self._day(now)
        hot = self._hot_symbols(board) if purpose is not Purpose.REFRESH else 0
        day_key = self._day_key(now, purpose)
        refusal = policy.refusal(purpose, credits, self._spent(board, now), day, hot)
        if refusal is None:
            board.add(day_key, credits, ttl=_DAY_TTL)
            # Counted first, checked after: of two processes racing for the last credits,
            # at most one keeps them.
            refusal = policy.refusal(purpose, 0, self._spent(board, now), day, hot)
            if refusal is not None:
                board.give_back(day_key, credits)
            elif credits:
                self._reserved_on.days = {**getattr(self._reserved_on, "days", {}),
                                          purpose: day_key}
        if refusal is not None:
            board.give_back(minute_key, 1)
            raise periods.budget_spent(timedelta(seconds=day.seconds_left), refusal)

    def _spent(self, board: Board, now: datetime) -> Spent:
        """Today's credits by purpose, and under ELSEWHERE those CoinMarketCap counted that we
        did not (its key info said so: another client of the key, counters lost to a restart)."""
        kinds: list[Purpose | str] = [*Purpose, ELSEWHERE]
        keys = [self._day_key(now, k) for k in kinds]
        counts = board.counts(keys)
        if board is self._shared:
            self._seen = dict(zip(keys, counts, strict=True))
        return Spent(*counts)

    def _day(self, now: datetime) -> BudgetDay:
        left = (self._daily_reset(now, fresh=False)[0] - now).total_seconds()
        left = min(max(left, 0.0), DAY_SECONDS)
        return BudgetDay(seconds_gone=DAY_SECONDS - left, seconds_left=left)

    def _count_on_locally(self) -> None:
        """Bring this process's counters up to the shared ones it last saw: counting from zero
        when the board fails, every process would get the whole day again."""
        for key, seen in self._seen.items():
            self._local.raise_to(key, seen, ttl=_DAY_TTL)

    def _catch_up(self, board: Board, info: KeyInfo, asked: datetime) -> None:
        """Count what CoinMarketCap says was spent today beyond our own count, as ELSEWHERE.

        Raised to a figure rather than added to: processes reading key info at once would each
        add the same difference."""
        now = self.clock.now()
        same_day = info.daily_reset is None or abs(
            (info.daily_reset - periods.next_midnight(now)).total_seconds()) < 60
        # Not comparable to ours: a plan whose day is not the UTC day, or a count asked for
        # before UTC midnight (yesterday's, maybe).
        if info.credits_used_today is None or not same_day or asked.date() != now.date():
            return
        spent = self._spent(board, now)
        elsewhere = info.credits_used_today - (spent.total - spent.elsewhere)
        if elsewhere > spent.elsewhere:
            logger.warning("CoinMarketCap counted %d credit(s) today that coinquote did not",
                           elsewhere - spent.elsewhere)
            board.raise_to(self._day_key(now, ELSEWHERE), elsewhere, ttl=_DAY_TTL)

    def _minute_key(self, now: datetime) -> str:
        return f"{self._prefix}:minute:{now:%Y%m%dT%H%M}"

    def _day_key(self, now: datetime, kind: Purpose | str) -> str:
        return f"{self._prefix}:day:{now:%Y%m%d}:{kind}"

    # -- how many symbols refresh-ahead keeps fresh --------------------------------------------

    def _note_hot(self, symbols: int) -> None:
        """Tell every process how many symbols are hot (what refresh-ahead needs depends on it);
        written when it changes, or before the note expires. None is never written: a round
        over nothing (a refresher starting before any request) says nothing of the next."""
        now = time.monotonic()
        if symbols <= 0:
            return
        if self._hot_written is not None and self._hot_written[1] == symbols \
                and now - self._hot_written[0] < _HOT_NOTE_SECONDS / 2:
            return
        self._on_board(lambda board: board.write_note(
            f"{self._prefix}:hot", str(int(symbols)), _HOT_NOTE_SECONDS))
        self._hot_written = (now, symbols)

    def _hot_symbols(self, board: Board) -> int:
        """How many symbols refresh-ahead keeps fresh, as its refresher last said; while none has
        said (a deployment starting), at least one when refresh-ahead is on: what it will need
        for up to 100 symbols is one credit a round all the same."""
        (note,) = board.notes([f"{self._prefix}:hot"])
        count = notes.hot_count_from_note(note)
        return count if count is not None else 1 if self.refresh_ahead else 0

    # -- CoinMarketCap's verdicts ---------------------------------------------------------------

    def _verdicts(self, board: Board) -> list[tuple[datetime, int]]:
        keys = [f"{self._prefix}:verdict:{scope}" for scope in LimitVerdict.SCOPES]
        return [verdict for note in board.notes(keys) if (verdict := notes.verdict_from_note(note))]

    def _record_verdict(self, board: Board, scope: str, code: int, until: datetime,
                        now: datetime, known: bool) -> None:
        """Share a verdict. A shorter one never shortens a longer one in force, except that a
        reset CoinMarketCap told (key info, Retry-After) replaces a guessed day's or month's."""
        key = f"{self._prefix}:verdict:{scope}"
        (current,) = (notes.verdict_from_note(note) for note in board.notes([key]))
        if current is not None and current[0] >= until and (scope == "minute" or not known):
            return
        board.write_note(key, notes.verdict_note(until, code), (until - now).total_seconds() + 60)

    def _daily_reset(self, now: datetime, *, fresh: bool) -> tuple[datetime, bool]:
        """When today's credits come back, and whether CoinMarketCap said so (else a guess)."""
        info = self._key_info(force=fresh)
        if info is not None and info.daily_reset is not None and info.daily_reset > now:
            return info.daily_reset, True
        return periods.next_midnight(now), False

    def _monthly_reset(self, now: datetime, *, fresh: bool) -> tuple[datetime, bool]:
        """When the month's credits come back, and whether CoinMarketCap said so."""
        info = self._key_info(force=fresh)
        if info is not None and info.monthly_reset is not None and info.monthly_reset > now:
            return info.monthly_reset, True
        return periods.next_month(now), False

    # -- the plan from /v1/key/info --------------------------------------------------------------

    def _key_info(self, *, force: bool = False) -> KeyInfo | None:
        """The key info every process shares: re-read by one process once it is older than
        `key_info_every_seconds` (or at once when `force`, after a day's verdict)."""
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

    def _shared_key_info(self, board: Board, now: float, force: bool) -> KeyInfo | None:
        key = f"{self._prefix}:key-info"
        (note,) = board.notes([key])
        known = notes.key_info_from_note(note) if note else None
        if known is not None and not force and now - known[0] < self.key_info_every_seconds:
            return known[1]
        # One reader per 30 s across processes, except after a day's verdict (every reader pays
        # a call of the minute all the same), and for a process that knows no plan at all: the
        # Basic plan's guess may be ten times what the key allows.
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
        read = self.read_key_info
        if read is None:
            return known[1] if known else None
        try:
            info = read()
        except Exception as exc:  # noqa: BLE001 - the plan falls back; nothing may reach a request
            logger.warning("CoinMarketCap key info not read (%s); keeping the plan known so far",
                           type(exc).__name__)
            return known[1] if known else None
        board.write_note(key, notes.key_info_note(now, info), MAX_TTL_SECONDS)
        self._catch_up(board, info, asked)
        return info

    def _warn_if_too_small(self, plan: Plan) -> None:
        """One warning per process and plan when the plan cannot hold the freshness bound."""
        figures = (plan.daily_credits, plan.calls_per_minute)
        if figures in self._warned_plans:
            return
        self._warned_plans.add(figures)
        policy = self.policy(plan)
        if not policy.holds_max_age():
            logger.warning(
                "the CoinMarketCap plan (%d credits a day) cannot keep hot quotes within"
                " QUOTE_MAX_AGE_SECONDS=%g: refresh-ahead can hold %d s at best (100 hot"
                " symbols, nothing else spending); older quotes are served marked stale",
                plan.daily_credits, self.max_age_seconds, math.ceil(policy.bound_held()))

    # -- storage failures ----------------------------------------------------------------------

    def _on_board(self, operation: Callable[[Board], _T]) -> _T:
        """Run `operation` on the shared board; on its failure, in-process for a while."""
        if self._local is not self._shared and time.monotonic() >= self._shared_down_until:
            try:
                return operation(self._shared)
            except BudgetSpent:
                raise
            except Exception as exc:  # noqa: BLE001 - the port promises nothing but BudgetSpent
                logger.warning("credit counters unreachable (%s); no CoinMarketCap call for %d s",
                               type(exc).__name__, _SHARED_RETRY_SECONDS)
                self._shared_down_until = time.monotonic() + _SHARED_RETRY_SECONDS
            self._count_on_locally()
        return operation(self._local)
