"""Retry policy: an error and an attempt count in, "retry at T" or "give up, because" out.

Only transient failures retry: timeouts, connection errors, lost responses, 5xx and 429.
Everything else is permanent and goes to a person. Rate-limit answers (429) are the partner
asking us to slow down, not a failure of the record, so they do not use up the failure budget;
a hard limit on all attempts still bounds them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Error classes: what went wrong, in words a filter can use. Kept in one place so the UI,
# the review queue and the retry decision agree.
TIMEOUT = "timeout"
CONNECTION = "connection"
LOST_RESPONSE = "lost_response"
SERVER_ERROR = "server_error"
RATE_LIMITED = "rate_limited"
CLIENT_ERROR = "client_error"
AUTH = "auth"
CONFLICT = "conflict"
IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
MAPPING_REJECTED = "mapping_rejected"
MAPPING_REVIEW = "mapping_review"
MISSING_PARENT = "missing_parent"
STALE = "stale"
RULE_SKIP = "rule_skip"
RULE_HOLD = "rule_hold"
CONFIG = "config"
INTERNAL = "internal"

TRANSIENT = frozenset({TIMEOUT, CONNECTION, LOST_RESPONSE, SERVER_ERROR, RATE_LIMITED})

ERROR_CLASS_LABELS: dict[str, str] = {
    TIMEOUT: "Partner timed out",
    CONNECTION: "Could not connect",
    LOST_RESPONSE: "Connection dropped before an answer",
    SERVER_ERROR: "Partner server error (5xx)",
    RATE_LIMITED: "Rate limited (429)",
    CLIENT_ERROR: "Partner refused the data (4xx)",
    AUTH: "Partner refused our credentials",
    CONFLICT: "Already exists at the partner",
    IDEMPOTENCY_MISMATCH: "Idempotency key reused with other data",
    MAPPING_REJECTED: "Rejected by the mapping",
    MAPPING_REVIEW: "Mapping needs a person",
    MISSING_PARENT: "Parent record not delivered yet",
    STALE: "Older than what was already sent",
    RULE_SKIP: "Skipped by a customer rule",
    RULE_HOLD: "Held by a customer rule",
    CONFIG: "Integration configuration problem",
    INTERNAL: "Internal error",
}

DEFAULT_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``max_attempts`` counts failed tries (not 429s); ``hard_limit`` counts all."""

    max_attempts: int = 7
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    cap_seconds: int = 36000
    hard_limit: int = 25
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "schedule": list(self.schedule),
            "jitter": self.jitter,
            "cap_seconds": self.cap_seconds,
            "hard_limit": self.hard_limit,
        }


DEFAULT_POLICY = RetryPolicy()


def default_policy_dict() -> dict[str, Any]:
    return DEFAULT_POLICY.to_dict()


def _int(data: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}, not {value!r}")
    return value


def policy_from_dict(data: dict[str, Any] | None) -> RetryPolicy:
    """Validate a stored policy. Raises ValueError naming the bad key."""
    if data is None:
        return DEFAULT_POLICY
    if not isinstance(data, dict):
        raise ValueError("retry policy must be an object")
    unknown = set(data) - {"max_attempts", "schedule", "jitter", "cap_seconds", "hard_limit"}
    if unknown:
        raise ValueError(f"unknown retry policy keys: {', '.join(sorted(unknown))}")
    max_attempts = _int(data, "max_attempts", DEFAULT_POLICY.max_attempts, 1, 50)
    cap = _int(data, "cap_seconds", DEFAULT_POLICY.cap_seconds, 1, 7 * 86400)
    hard_limit = _int(data, "hard_limit", max(DEFAULT_POLICY.hard_limit, max_attempts), 1, 200)
    schedule_raw = data.get("schedule", list(DEFAULT_POLICY.schedule))
    if (
        not isinstance(schedule_raw, list)
        or not schedule_raw
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in schedule_raw)
    ):
        raise ValueError("schedule must be a non-empty list of seconds (whole numbers ≥ 0)")
    jitter = data.get("jitter", DEFAULT_POLICY.jitter)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be a fraction from 0 to 1, not {jitter!r}")
    if hard_limit < max_attempts:
        raise ValueError("hard_limit must be at least max_attempts")
    return RetryPolicy(
        max_attempts=max_attempts,
        schedule=tuple(schedule_raw),
        jitter=float(jitter),
        cap_seconds=cap,
        hard_limit=hard_limit,
    )


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    at: datetime | None
    reason: str
    counts_as_failure: bool


def backoff_seconds(policy: RetryPolicy, failure_number: int, rng: random.Random | None = None) -> float:
    """Delay before the retry that follows the ``failure_number``-th failure (1-based), with jitter."""
    base = policy.schedule[min(failure_number, len(policy.schedule)) - 1]
    spread = base * policy.jitter
    delay = base + (rng or random).uniform(-spread, spread) if spread else float(base)
    return float(min(max(delay, 0.0), policy.cap_seconds))


def decide(
    policy: RetryPolicy,
    *,
    error_class: str,
    attempt_number: int,
    failures_before: int,
    now: datetime,
    retry_after_seconds: float | None = None,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide what follows a failed attempt.

    ``attempt_number`` is the number of the attempt that just failed (all kinds counted);
    ``failures_before`` is how many earlier attempts used up the failure budget.
    """
    label = ERROR_CLASS_LABELS.get(error_class, error_class)
    if error_class not in TRANSIENT:
        return RetryDecision(False, None, f"{label}: not retried, needs a person", True)
    counts = error_class != RATE_LIMITED
    failures = failures_before + (1 if counts else 0)
    if counts and failures >= policy.max_attempts:
        return RetryDecision(False, None, f"Gave up after {failures} failed attempts ({label})", True)
    if attempt_number >= policy.hard_limit:
        return RetryDecision(False, None, f"Gave up after {attempt_number} attempts in all ({label})", counts)
    if error_class == RATE_LIMITED:
        # Never earlier than the partner asked; long waits are clamped to the cap and the
        # record is rescheduled (a worker never sleeps on it).
        wanted = retry_after_seconds if retry_after_seconds is not None else backoff_seconds(policy, 1, rng)
        delay = min(max(wanted, 0.0), float(policy.cap_seconds))
        delay += (rng or random).uniform(0, min(1.0, delay * 0.1))
        return RetryDecision(True, now + timedelta(seconds=delay), f"{label}: retry in {delay:.0f} s", False)
    delay = backoff_seconds(policy, failures, rng)
    return RetryDecision(True, now + timedelta(seconds=delay), f"{label}: retry in {delay:.0f} s", True)
