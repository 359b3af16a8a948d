#!/usr/bin/env python3
"""Generate the schedule conformance table from zae-limiter 0.17.0 itself.

Every expected value in the output is computed by the reference library
(`zae_limiter.schedule`, with `cronsim` and the `tzdata` package); nothing is
written by hand. The output is deterministic for a given seed and library
versions.

Setup (once):

    python3 -m venv /tmp/schedvenv
    /tmp/schedvenv/bin/pip install zae-limiter==0.17.0 cronsim==2.8 tzdata==2026.6

Run from the repository root:

    /tmp/schedvenv/bin/python tests/schedule/make_cases.py \
        > component/tests/schedule-cases/cases.json

The replay is `component/tests/schedule.rs`.
"""

from __future__ import annotations

import os

# Read zones from the pinned `tzdata` package only, never the system copy, so
# the table does not depend on the machine that generated it.
os.environ["PYTHONTZPATH"] = ""

import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import unicodedata  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from importlib.metadata import version  # noqa: E402
from zoneinfo import ZoneInfo, available_timezones  # noqa: E402

import tzdata  # noqa: E402
from zae_limiter import schedule as S  # noqa: E402
from zae_limiter.schema import BUCKET_SCHED_NONE  # noqa: E402

SEED = 20260517
rng = random.Random(SEED)

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "Europe/London",
    "Australia/Sydney",
    "America/Santiago",
    "America/Havana",
    "Africa/Cairo",
    "Asia/Kathmandu",
    "Europe/Dublin",
    "Antarctica/Troll",
    "America/Nuuk",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Asia/Beirut",
    "Africa/Casablanca",
    "America/Asuncion",
    "Asia/Gaza",
    "America/Los_Angeles",
    "America/Scoresbysund",
]
DST_ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "Australia/Sydney",
    "America/Santiago",
    "America/Havana",
    "Africa/Cairo",
    "Europe/Dublin",
    "Antarctica/Troll",
    "America/Nuuk",
    "Asia/Beirut",
    "Africa/Casablanca",
    "Asia/Gaza",
    "America/Los_Angeles",
]

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()


def ms(d: datetime) -> int:
    return int(d.timestamp()) * 1000


T_START = ms(datetime(2024, 1, 1, tzinfo=UTC))
T_END = ms(datetime(2028, 1, 1, tzinfo=UTC))


# ---------------------------------------------------------------- cron text


def num(lo: int, hi: int, names: list[str] | None = None, name_base: int = 0) -> str:
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.4 and 0 <= v - name_base < len(names):
        n = names[v - name_base]
        return n if rng.random() < 0.7 else n.lower()
    return str(v)


def item(lo: int, hi: int, names=None, name_base=0) -> str:
    r = rng.random()
    if r < 0.35:
        return num(lo, hi, names, name_base)
    if r < 0.6:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        if names and rng.random() < 0.3 and b - name_base < len(names) and a - name_base >= 0:
            return f"{names[a - name_base]}-{names[b - name_base]}"
        return f"{a}-{b}"
    if r < 0.75:
        return f"*/{rng.choice([1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 20, 30, 45, 90])}"
    if r < 0.88:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return f"{a}-{b}/{rng.randint(1, max(1, hi - lo))}"
    return f"{rng.randint(lo, hi)}/{rng.randint(1, max(1, hi - lo))}"


def field(lo: int, hi: int, star: float, names=None, name_base=0) -> str:
    if rng.random() < star:
        return "*"
    if rng.random() < 0.25:
        return ",".join(item(lo, hi, names, name_base) for _ in range(rng.randint(2, 3)))
    return item(lo, hi, names, name_base)


def random_cron(style: str | None = None) -> str:
    style = style or rng.choice(["minute", "minute", "hour", "hour", "day", "any"])
    if style == "minute":
        m = field(0, 59, 0.0)
        h = field(0, 23, 0.5)
    elif style == "hour":
        m = "*"
        h = field(0, 23, 0.0)
    elif style == "day":
        m, h = "*", "*"
    else:
        m = field(0, 59, 0.5)
        h = field(0, 23, 0.5)
    dom = field(1, 31, 0.7)
    mon = field(1, 12, 0.75, MONTHS, 1)
    dow = field(0, 7, 0.6, DAYS, 0)
    if style == "day" and dom == "*" and mon == "*" and dow == "*":
        dow = field(0, 7, 0.0, DAYS, 0)
    return f"{m} {h} {dom} {mon} {dow}"


def entry(cron: str, tz: str, reset: bool = False) -> S.ScheduleEntry:
    if reset:
        return S.ScheduleEntry.reset(cron=cron, tz=tz)
    r = rng.random()
    if r < 0.5:
        scale = rng.choice([0.001, 0.0015, 0.1, 0.25, 0.333, 0.5, 0.7, 1.5, 2.3, 3.0, 10.0, 1000.0, 123456.789, 1e6])
        return S.ScheduleEntry(cron=cron, tz=tz, scale=scale)
    kw = {}
    while not kw:
        if rng.random() < 0.6:
            kw["capacity"] = rng.choice([1, 10, 500, 10_000, 10**15])
        if rng.random() < 0.5:
            kw["refill_amount"] = rng.choice([1, 5, 100, 10**15])
        if rng.random() < 0.4:
            kw["refill_period_seconds"] = rng.choice([1, 60, 3600, 86400, 10**9])
    return S.ScheduleEntry(cron=cron, tz=tz, **kw)


def valid_entries(tz: str, n: int, reset: bool, style: str | None = None) -> tuple:
    out = []
    while len(out) < n:
        try:
            out.append(entry(random_cron(style), tz, reset))
        except ValueError:
            continue
    return tuple(out)


# ---------------------------------------------------------------- decode cases


def mask(values) -> int:
    return sum(1 << v for v in values)


def describe(entries) -> list:
    out = []
    for e in entries:
        p = S.parse_cron(e.cron, e.tz)
        if e._reset:
            mod = ["r"]
        elif e.scale is not None:
            mod = ["s", e.scale]
        else:
            mod = ["a", e.capacity, e.refill_amount, e.refill_period_seconds]
        out.append(
            [mask(p.minutes), mask(p.hours), mask(p.days), mask(p.months), mask(p.weekdays), p.day_and, mod]
        )
    return out


def decode_case(kind: str, compact: str, tz: str) -> dict:
    fn = S.decode if kind == "param" else S.decode_reset
    try:
        entries = fn(compact, tz)
    except Exception as exc:  # every failure is "undecodable" to the caller
        return {"kind": kind, "compact": compact, "tz": tz, "ok": False, "error": type(exc).__name__}
    return {"kind": kind, "compact": compact, "tz": tz, "ok": True, "entries": describe(entries)}


DIGIT_ZEROS = [c for c in range(sys.maxunicode + 1) if unicodedata.decimal(chr(c), None) == 0]
SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def weird_int() -> str:
    r = rng.random()
    v = rng.choice([0, 1, 5, 500, 1000, 10**6, 10**9, 10**9 + 1, 10**15, 10**15 + 1, 10**40])
    if r < 0.2:
        return str(-v)
    if r < 0.35:
        s = str(v)
        return "_".join(s[i : i + 1] for i in range(len(s))) if rng.random() < 0.5 else s.replace("0", "__0", 1)
    if r < 0.5:
        z = rng.choice(DIGIT_ZEROS)
        return "".join(chr(z + int(d)) for d in str(v))
    if r < 0.62:
        return rng.choice(SPACES) + str(v) + rng.choice(SPACES)
    if r < 0.7:
        return "+" + str(v)
    if r < 0.76:
        return "0" * rng.choice([1, 4299, 4300]) + str(v)
    if r < 0.8:
        return rng.choice(["", "x", "1.5", "0x10", "1e3", "--1", "1 2", "\u00b2", "\u0663"])
    return str(v)


RAW_FIELD_BITS = [
    "*", "0", "5", "59", "60", "007", "1-5", "5-1", "*/0", "*/15", "5/15", "5-5/20", "1,2", "1,,2",
    "L", "LW", "15W", "5L", "FRI#2", "1#2", "mon", "Mon-Fri", "SUN", "sun/2", "7", "0-7", "SAT-SUN",
    "jan", "Jul-Sep", "JANUARY", "\u017fun", "\u0663", "31", "30", "29", "*/99999999999999999999999",
    "-5", "**", "1/2/3", " 5", "5 ", "1 2", "*-5", "0-59/7", "13", "24", "32",
]


def raw_compact(reset: bool) -> str:
    body_entries = []
    for _ in range(rng.randint(1, 3)):
        e = ""
        for tag in "mhDMw":
            if rng.random() < 0.5:
                e += tag + rng.choice(RAW_FIELD_BITS)
        if not reset or rng.random() < 0.15:
            for tag in rng.sample("scap", rng.choice([1, 1, 1, 2])):
                e += tag + weird_int()
        body_entries.append(e)
    marker = rng.choice(["1", "1", "1", "1", "01", "0", "2", "", "0" * 4300 + "1"])
    return marker + ";".join(body_entries)


ALPHABET = "mhDMwscap0123456789,-/*;#LW \u00a0\u017f\u0663_+xS"


def mutate(s: str) -> str:
    s = list(s)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randint(0, len(s))
        if op < 0.4:
            s.insert(i, rng.choice(ALPHABET))
        elif op < 0.7 and s:
            del s[min(i, len(s) - 1)]
        elif s:
            s[min(i, len(s) - 1)] = rng.choice(ALPHABET)
    return "".join(s)


HANDMADE = [
    ("param", "", "UTC"),
    ("param", "", "Not/AZone"),
    ("reset", "", "UTC"),
    ("param", BUCKET_SCHED_NONE, "UTC"),
    ("reset", BUCKET_SCHED_NONE, "UTC"),
    ("param", "1", "UTC"),
    ("param", "0m5s1000", "UTC"),
    ("param", "00m5s1000", "UTC"),
    ("param", "01m5s1000", "UTC"),
    ("param", "2m5s1000", "UTC"),
    ("param", "m5s1000", "UTC"),
    ("param", "1m5s1000", "utc"),
    ("param", "1m5s1000", "Europe/paris"),
    ("param", "1m5s1000", "Europe"),
    ("param", "1m5s1000", "/UTC"),
    ("param", "1m5s1000", "Europe/../UTC"),
    ("param", "1m5s1000", "Etc/Unknown"),
    ("param", "1m5s1000", "posixrules"),
    ("param", "1m5s1000", "Factory"),
    ("param", "1m5s1000", "US/Eastern"),
    ("param", "1m5s1000", "EST5EDT"),
    ("param", "1m5s1000", ""),
    ("param", "1m5s1000", "zone.tab"),
    ("param", "1m5s1000;", "UTC"),
    ("reset", "1;", "UTC"),
    ("reset", "1;;", "UTC"),
    ("reset", "1m0h0;m0h0", "UTC"),
    ("reset", "1m0h0m0", "UTC"),
    ("param", "1s1000s1000", "UTC"),
    ("param", "1s0", "UTC"),
    ("param", "1s1", "UTC"),
    ("param", "1s1000000000", "UTC"),
    ("param", "1s1000000001", "UTC"),
    ("param", "1c1000000000000000", "UTC"),
    ("param", "1c1000000000000001", "UTC"),
    ("param", "1p1000000000", "UTC"),
    ("param", "1p1000000001", "UTC"),
    ("param", "1a0", "UTC"),
    ("param", "1s500c5", "UTC"),
    ("param", "1c5a5p5", "UTC"),
    ("param", "1m5", "UTC"),
    ("reset", "1m5s1", "UTC"),
    ("reset", "1m5c1", "UTC"),
    ("param", "1wfri s1000", "UTC"),
    ("param", "1w\u017fun s1000", "UTC"),
    ("param", "1D30M2s5", "UTC"),
    ("param", "1D30w1M2s5", "UTC"),
    ("param", "1D31M4,6s5", "UTC"),
    ("param", "1D31M4,5s5", "UTC"),
    ("param", "1D*/2w1s5", "UTC"),
    ("param", "1m*/0s5", "UTC"),
    ("param", "1w5-5/2s5", "UTC"),
    ("param", "1m1 2s5", "UTC"),
    ("param", "1m1\u3000s5", "UTC"),
    ("param", "1m1\x1cs5", "UTC"),
    ("param", "1c\x1c5", "UTC"),
    ("param", "1c\u00855", "UTC"),
    ("param", "1c" + "0" * 4300 + "5", "UTC"),
    ("param", "1c" + "0" * 4299 + "5", "UTC"),
    ("param", "1m" + "0" * 4300 + "5s5", "UTC"),
    ("param", "1m" + "0" * 4299 + "5s5", "UTC"),
    ("param", "1m*/" + "0" * 4299 + "5s5", "UTC"),
    ("param", "1m*/" + "0" * 4300 + "5s5", "UTC"),
    ("param", "1s" + "9" * 400, "UTC"),
    ("param", "1s-" + "9" * 400, "UTC"),
    ("param", "1\u0661m5s5", "UTC"),
    ("reset", "1DL", "UTC"),
    ("reset", "1DLW", "UTC"),
    ("reset", "1DL/2", "UTC"),
    ("reset", "1w5L", "UTC"),
    ("reset", "1wFRI#2", "UTC"),
    ("reset", "1w1#2", "UTC"),
    ("reset", "1m0h0w0", "UTC"),
    ("reset", "1m0h0w7", "UTC"),
    ("reset", "1m0h0w0,7", "UTC"),
    ("reset", "1m0h0w0-7", "UTC"),
    ("reset", "1m0h0D29M2", "UTC"),
    ("reset", "1m0h0M\u00dfEP", "UTC"),
    ("reset", "1\u00e9", "UTC"),
    ("reset", "1m0h\u00e9", "UTC"),
]


# ---------------------------------------------------------------- instants


def transitions(tz: str) -> list[int]:
    """UTC ms of every offset change in 2024..2027."""
    zone = ZoneInfo(tz)
    out = []
    step = 900_000
    t = T_START
    prev = datetime.fromtimestamp(t / 1000, zone).utcoffset()
    while t < T_END:
        nt = t + step
        off = datetime.fromtimestamp(nt / 1000, zone).utcoffset()
        if off != prev:
            lo, hi = t, nt  # offset(lo) == prev, offset(hi) == off
            while hi - lo > 1000:
                mid = (lo + hi) // 2 // 1000 * 1000
                if mid in (lo, hi):
                    break
                if datetime.fromtimestamp(mid / 1000, zone).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
            prev = off
        t = nt
    return out


def local_ms(tz: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return ms(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)))


def random_instant(tz: str, trans: dict) -> int:
    r = rng.random()
    if r < 0.3:
        t = rng.randrange(T_START, T_END)
    elif r < 0.6 and trans.get(tz):
        t = rng.choice(trans[tz]) + rng.randint(-180, 180) * 60_000
    elif r < 0.75:
        # Around a local month end or a leap day.
        y = rng.randint(2024, 2027)
        mo = rng.randint(1, 12)
        if rng.random() < 0.3:
            y, mo = 2024, 3
        t = local_ms(tz, y, mo, 1) + rng.randint(-90, 90) * 60_000
    elif r < 0.85:
        # Around a local midnight or the top of an hour.
        base = rng.randrange(T_START, T_END) // 3_600_000 * 3_600_000
        t = base + rng.randint(-3, 3) * 60_000
    elif r < 0.9:
        t = local_ms(tz, 2024, 2, 29, rng.randint(0, 23), rng.randint(0, 59))
    elif r < 0.95:
        t = rng.choice(
            [
                ms(datetime(1900, 6, 1, tzinfo=UTC)),
                ms(datetime(1950, 3, 26, tzinfo=UTC)),
                ms(datetime(1969, 12, 31, 23, 30, tzinfo=UTC)),
                ms(datetime(2038, 1, 19, 3, 14, tzinfo=UTC)),
                ms(datetime(2100, 2, 28, 23, 0, tzinfo=UTC)),
                ms(datetime(2500, 10, 31, tzinfo=UTC)),
            ]
        ) + rng.randint(-3000, 3000) * 60_000
    else:
        t = rng.randrange(T_START, T_END)
    if rng.random() < 0.35:
        t += rng.randint(1, 59_999)  # not minute-aligned
    return t


EXTREME_INSTANTS = [
    253402300799999,  # 9999-12-31T23:59:59.999Z
    253402300800000,
    253402300799999 - 3 * 86_400_000,
    253402300799999 - 400 * 86_400_000,
    -62135596800000,  # 0001-01-01T00:00:00Z
    -62135596800001,
    -62135596800000 + 3 * 86_400_000,
    -62135596800000 + 400 * 86_400_000,
    -1,
    0,
    -(2**62),
    2**62,
]

RESET_CRONS = [
    "0 0 * * *",
    "0 0 1 * *",
    "0 0 1 1,4,7,10 *",
    "0 0 1 1 *",
    "0 0 * * MON",
    "30 2 * * *",
    "0 2 * * *",
    "45 2 * * *",
    "0 1 * * *",
    "0 0 29 2 *",
    "* 9 * * *",
    "* 0 * * *",
    "0 */6 * * *",
    "*/30 * * * *",
    "* * 1 * *",
    "* * * * SUN",
    "0 0 * * 1-5",
    "15 3 1,15 * *",
    "0 12 * * 0,6",
    "0 0 31 * *",
]

PARAM_CRONS = [
    "* 9-17 * * MON-FRI",
    "*/15 9-17 * * MON-FRI",
    "* 2 * * *",
    "* 1-2 * * *",
    "0-29 2 * * *",
    "* * * * SAT,SUN",
    "* * 1 * *",
    "* 0-6 * * *",
    "30-59 1 * * *",
    "* 23 * * *",
    "* * * 2 *",
]


HANG_SECONDS = 5


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


signal.signal(signal.SIGALRM, _alarm)


def eval_case(sched: tuple, rsched: tuple, tz: str, now: int) -> dict:
    compact, _ = S.encode(sched)
    rcompact, _ = S.encode_reset(rsched)
    # Evaluate what the stored strings decode to, as the aggregator does. A
    # lone all-wildcard reset entry encodes to the bare marker `1`, which the
    # reference cannot decode; such a draw is skipped.
    try:
        sched = S.decode(compact, tz)
        rsched = S.decode_reset(rcompact, tz)
    except ValueError:
        return None
    base = rng.choice(
        [
            (1_000_000, 1_000_000, 60_000),
            (10_000, 0, 86_400_000),
            (1, 1, 1000),
            (7, 3, 1000),
            (999, 1, 60_000),
            (10**18 + 7, 10**16 + 3, 3_600_000),
            (10**36 + 12345, 10**30 + 1, 60_000),
            (10**38 - 1, 10**38 - 1, 1),
            (123_456_789, 98_765, 60_000),
        ]
    )
    case = {"sched": compact, "rsched": rcompact, "tz": tz, "base": [str(v) for v in base], "now": now}

    def run(key, f):
        # zae-limiter 0.17.0's backward reset scan can loop forever (see
        # `latest_where` in component/src/schedule/scan.rs); every other call
        # returns in well under a second, so a few seconds mark a hang.
        signal.alarm(HANG_SECONDS)
        try:
            v = f()
        except (OverflowError, ValueError, OSError) as exc:
            case[key] = {"error": type(exc).__name__}
            return
        except Hang:
            case[key] = {"hang": True}
            return
        finally:
            signal.alarm(0)
        case[key] = [str(x) for x in v] if isinstance(v, tuple) else v

    run("eff", lambda: S.effective_params(*base, sched, now))
    run("nb", lambda: S.next_boundary(sched, rsched, now_ms=now))
    run("prev", lambda: S.prev_reset_edge(rsched, now))
    run("next", lambda: S.next_reset_edge(rsched, now_ms=now))
    return case


def main() -> None:
    trans = {tz: transitions(tz) for tz in DST_ZONES}

    decode_cases = [decode_case(k, c, tz) for k, c, tz in HANDMADE]
    for i in range(1000):
        tz = rng.choice(ZONES)
        reset = rng.random() < 0.4
        entries = valid_entries(tz, rng.randint(1, 4), reset)
        compact, _ = (S.encode_reset if reset else S.encode)(entries)
        kind = "reset" if reset else "param"
        r = rng.random()
        if r < 0.55:
            decode_cases.append(decode_case(kind, compact, tz))
        elif r < 0.8:
            decode_cases.append(decode_case(rng.choice(["param", "reset"]), mutate(compact), tz))
        else:
            decode_cases.append(decode_case(kind, compact, rng.choice(["utc", "Mars/Olympus", "Asia/Kolkata"])))
    for _ in range(500):
        reset = rng.random() < 0.5
        decode_cases.append(decode_case("reset" if reset else "param", raw_compact(reset), rng.choice(ZONES)))

    eval_cases = []

    def add(case):
        if case is not None:
            eval_cases.append(case)

    # Hand-picked shapes in the zones with the oddest transitions.
    for tz in ZONES:
        for _ in range(6):
            cron = rng.choice(RESET_CRONS)
            rsched = (S.ScheduleEntry.reset(cron=cron, tz=tz),)
            sched = (S.ScheduleEntry(cron=rng.choice(PARAM_CRONS), tz=tz, scale=0.5),) if rng.random() < 0.6 else ()
            add(eval_case(sched, rsched, tz, random_instant(tz, trans)))
    # Instants right at (and one minute around) every transition of the DST zones.
    for tz in DST_ZONES:
        for t in trans[tz]:
            if rng.random() < 0.45:
                continue
            now = t + rng.choice([-60_000, -1, 0, 1, 60_000, 30 * 60_000, -30 * 60_000])
            rsched = (S.ScheduleEntry.reset(cron=rng.choice(RESET_CRONS), tz=tz),)
            sched = (S.ScheduleEntry(cron=rng.choice(PARAM_CRONS), tz=tz, scale=2.0),)
            add(eval_case(sched, rsched, tz, now))
    # Expressions aimed at the local hours and days each transition touches.
    for tz in DST_ZONES:
        zone = ZoneInfo(tz)
        for t in trans[tz]:
            before = datetime.fromtimestamp((t - 60_000) / 1000, zone)
            after = datetime.fromtimestamp(t / 1000, zone)
            hours = sorted({before.hour, after.hour, (before.hour + 1) % 24})
            for _ in range(3):
                h = rng.choice(hours)
                m = rng.choice([0, before.minute, after.minute, 30, 45, 59])
                rcron = rng.choice(
                    [f"{m} {h} * * *", f"* {h} * * *", f"0 {h} * * *", f"{m} {h} {after.day} * *", "0 0 * * *",
                     f"* * {after.day} * *"]
                )
                pcron = rng.choice(
                    [f"* {h} * * *", f"{m}-59 {h} * * *", f"* {hours[0]}-{hours[-1]} * * *", f"* * {after.day} * *",
                     f"0-{m} * * * *"]
                )
                rsched = (S.ScheduleEntry.reset(cron=rcron, tz=tz),)
                sched = (S.ScheduleEntry(cron=pcron, tz=tz, scale=0.25),) if rng.random() < 0.7 else ()
                now = t + rng.randint(-240, 240) * 60_000 + rng.choice([0, 0, rng.randint(1, 59_999)])
                add(eval_case(sched, rsched, tz, now))
    # Random schedules, both kinds, at random instants.
    while len(eval_cases) < 2900:
        tz = rng.choice(ZONES if rng.random() < 0.5 else DST_ZONES)
        r = rng.random()
        sched = valid_entries(tz, rng.randint(1, 3), False) if r < 0.75 else ()
        rsched = valid_entries(tz, rng.randint(1, 2), True) if r > 0.45 else ()
        add(eval_case(sched, rsched, tz, random_instant(tz, trans)))
    # Instants at the edges of the datetime range.
    for now in EXTREME_INSTANTS:
        for tz in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"):
            sched = (S.ScheduleEntry(cron="* 9-17 * * *", tz=tz, scale=0.5),)
            rsched = (S.ScheduleEntry.reset(cron="0 0 1 * *", tz=tz),)
            add(eval_case(sched, rsched, tz, now))
            add(eval_case((S.ScheduleEntry(cron="0 0 * * *", tz=tz, scale=0.5),), (), tz, now))

    hangs = sum(1 for c in eval_cases for k in ("nb", "prev", "next") if isinstance(c[k], dict) and c[k].get("hang"))
    print(f"{len(decode_cases)} decode cases, {len(eval_cases)} eval cases, {hangs} reference hangs", file=sys.stderr)
    out = {
        "generator": "tests/schedule/make_cases.py",
        "seed": SEED,
        "versions": {
            "python": sys.version.split()[0],
            "zae-limiter": version("zae-limiter"),
            "cronsim": version("cronsim"),
            "tzdata": tzdata.IANA_VERSION,
        },
        "bucket_sched_none": BUCKET_SCHED_NONE,
        "zones": sorted(available_timezones()),
        "decode": decode_cases,
        "eval": eval_cases,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
