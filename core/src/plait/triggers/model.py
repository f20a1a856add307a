"""The trigger model: what starts a run, of which DAG, and the policies around it.

A :class:`Trigger` is a frozen record: a name, the DAG it runs (a :class:`~plait.dag.Dag` or
a reference to one), a kind (``schedule``, ``poll``, ``manual``, or one a plugin adds) with
that kind's options, and policies: ``catchup`` (fires missed while no engine ran),
``max_active_runs`` with ``overlap`` (what a fire does while that many runs are active) and
``retry`` (restart a failed run). :meth:`Trigger.from_dict` / :meth:`Trigger.to_dict` are the
``[triggers]`` section of a configuration file.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from plait.errors import TriggerError
from plait.triggers.options import ManualOptions, PollOptions, ScheduleOptions

if TYPE_CHECKING:
    from plait.dag import Dag
    from plait.plugins import PluginHost

__all__ = ["Catchup", "CatchupPolicy", "Overlap", "RetryPolicy", "Trigger"]

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _enum(cls: type[enum.StrEnum], value: object, what: str) -> Any:
    try:
        return cls(value)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise TriggerError(f"{what} {value!r} is not one of {allowed}") from None


class CatchupPolicy(enum.StrEnum):
    """What a schedule does with instants it missed (engine down, machine asleep)."""

    SKIP = "skip"  #: fire none of them
    LATEST = "latest"  #: fire the most recent one
    ALL = "all"  #: fire each of them, oldest first, at most ``limit`` (the most recent)


class Overlap(enum.StrEnum):
    """What a fire does while its trigger already has ``max_active_runs`` runs."""

    SKIP = "skip"  #: record the fire as ``skipped``, start nothing
    QUEUE = "queue"  #: record it ``queued``; it starts when a run of the trigger ends


def _catchup_policy(value: object) -> CatchupPolicy:
    policy: CatchupPolicy = _enum(CatchupPolicy, value, "catchup")
    return policy


def _overlap(value: object) -> Overlap:
    overlap: Overlap = _enum(Overlap, value, "overlap")
    return overlap


@attrs.frozen(kw_only=True)
class Catchup:
    """The catch-up policy. An instant less than ``grace`` seconds old is not missed: it
    fires late under every policy (an engine that starts at 09:00:20 still fires 09:00)."""

    policy: CatchupPolicy = attrs.field(default=CatchupPolicy.SKIP, converter=_catchup_policy)
    limit: int = 10
    grace: float = 60.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Restart a failed run (same run id; completed nodes are not executed again) after
    ``backoff`` seconds, growing by ``factor`` per attempt up to ``max_backoff``, at most
    ``attempts`` times."""

    attempts: int = 3
    backoff: float = 30.0
    factor: float = 2.0
    max_backoff: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1 for the first)."""
        return float(min(self.backoff * self.factor ** max(attempt - 1, 0), self.max_backoff))


def _catchup(value: Catchup | str | Mapping[str, Any]) -> Catchup:
    if isinstance(value, Catchup):
        return value
    if isinstance(value, str):
        return Catchup(policy=value)
    return Catchup(**value)


def _retry(value: RetryPolicy | int | Mapping[str, Any] | None) -> RetryPolicy | None:
    if value is None or isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int):
        return RetryPolicy(attempts=value) if value > 0 else None
    return RetryPolicy(**value)


@attrs.frozen(kw_only=True)
class Trigger:
    """Starts runs of ``dag``. Build one with :meth:`schedule`, :meth:`poll`, :meth:`manual`,
    :meth:`from_dict`, or directly with a plugin kind's name and options record.

    ``dag`` is a :class:`~plait.dag.Dag`, or a reference resolved by the engine: an nsref of
    the engine's namespace, else ``"package.module:attribute"`` (a Dag, or a function
    returning one). Each fire's payload (a dict) becomes the run's inputs, over the trigger's
    static ``inputs``: ``{"label": {"param": value}}`` by source node, or
    ``{"param": value}`` by source parameter name. ``active`` is the activation a store
    records the first time it sees the trigger; afterwards the stored one wins
    (``plait triggers activate|deactivate``).
    """

    name: str
    dag: Dag | str = attrs.field(eq=False)
    kind: str
    options: Any
    inputs: dict[str, Any] = attrs.field(factory=dict)
    catchup: Catchup = attrs.field(factory=Catchup, converter=_catchup)
    max_active_runs: int = 1
    overlap: Overlap = attrs.field(default=Overlap.SKIP, converter=_overlap)
    retry: RetryPolicy | None = attrs.field(default=None, converter=_retry)
    active: bool = True
    description: str = ""

    def __attrs_post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise TriggerError(f"trigger {self.name!r}: " + "; ".join(problems))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def schedule(
        cls,
        name: str,
        dag: Dag | str,
        cron: str,
        *,
        timezone: str = "UTC",
        scheduled_param: str | None = None,
        **policies: Any,
    ) -> Trigger:
        """A cron schedule (``"30 2 * * *"``; six fields put seconds first) in ``timezone``.

        The expression is checked when the engine builds the trigger's watcher, and by
        :func:`plait.triggers.check_trigger`.
        """
        options = ScheduleOptions(cron=cron, timezone=timezone, scheduled_param=scheduled_param)
        return cls(name=name, dag=dag, kind="schedule", options=options, **policies)

    @classmethod
    def poll(
        cls,
        name: str,
        dag: Dag | str,
        check: str | Callable[[], Any],
        *,
        interval: float,
        timeout: float | None = None,
        max_backoff: float = 3600.0,
        **policies: Any,
    ) -> Trigger:
        """Call ``check`` (a callable or its gref) every ``interval`` seconds."""
        options = PollOptions(
            check=check, interval=interval, timeout=timeout, max_backoff=max_backoff
        )
        return cls(name=name, dag=dag, kind="poll", options=options, **policies)

    @classmethod
    def manual(cls, name: str, dag: Dag | str, **policies: Any) -> Trigger:
        """Fires only when asked: ``plait fire NAME`` or ``await engine.fire(NAME)``."""
        return cls(name=name, dag=dag, kind="manual", options=ManualOptions(), **policies)

    # ------------------------------------------------------------------ configuration
    @property
    def dag_ref(self) -> str:
        """The DAG as text: the reference, or a Dag object's nsref."""
        return self.dag if isinstance(self.dag, str) else self.dag.nsref

    def to_dict(self) -> dict[str, Any]:
        """JSON- and TOML-safe data that :meth:`from_dict` reads back (a Dag object is
        written as its nsref, a callable poll check as its gref)."""
        from plait.triggers.config import trigger_to_dict

        return trigger_to_dict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, name: str | None = None, host: PluginHost | None = None
    ) -> Trigger:
        """A trigger from configuration data: a ``[triggers.NAME]`` table (pass ``name``)
        or a dict with a ``name`` key. The kind's options sit beside the common keys::

            {"dag": "etl:nightly", "kind": "schedule", "cron": "0 2 * * *",
             "timezone": "Europe/Berlin", "catchup": "latest", "retry": 3}

        Unknown keys and wrong types raise :class:`~plait.errors.TriggerError` naming the
        trigger and the key.
        """
        from plait.triggers.config import trigger_from_dict

        return trigger_from_dict(data, name=name, host=host)


def _problems(trigger: Trigger) -> list[str]:
    problems = []
    if not isinstance(trigger.name, str) or not _NAME.match(trigger.name):
        problems.append(
            "a trigger name must start with a letter or digit and hold only letters, digits, "
            "'_', '.' and '-'"
        )
    if not isinstance(trigger.dag, str) and not hasattr(trigger.dag, "plan"):
        problems.append(f"dag must be a Dag or a reference string, got {trigger.dag!r}")
    if trigger.max_active_runs < 1:
        problems.append(f"max_active_runs must be >= 1, got {trigger.max_active_runs}")
    if trigger.catchup.limit < 1:
        problems.append(f"catchup limit must be >= 1, got {trigger.catchup.limit}")
    if trigger.catchup.grace < 0:
        problems.append(f"catchup grace must be >= 0 seconds, got {trigger.catchup.grace}")
    retry = trigger.retry
    if retry is not None and (retry.attempts < 0 or retry.backoff < 0 or retry.factor < 1):
        problems.append(f"retry needs attempts >= 0, backoff >= 0 and factor >= 1, got {retry!r}")
    inputs: object = trigger.inputs
    if not isinstance(inputs, dict):
        problems.append(f"inputs must be a dict, got {type(inputs).__name__}")
    return problems
