"""The invalidation and fill strategies as dimensions of the matrix (`--invalidations`,
`--fills`): where each applies, decided by the service's own rule (service.settings), and
the settings a run of one gets.
"""

from collections.abc import Mapping

from service.invalidation import STRATEGIES as INVALIDATIONS
from service.settings import CACHING, NEEDS, SettingError, check_together, defaults

# Each strategy dimension: its name in the matrix (a column of summary.csv) and the setting.
DIMENSIONS = {"invalidation": "CACHE_INVALIDATION", "fill": "CACHE_FILL"}


def applies_to(dimension: str) -> tuple[str, ...]:
    """The backends some value of `dimension` applies to (the others, such as `none`, run
    once without it): every backend the service's NEEDS lists for its setting."""
    setting = DIMENSIONS[dimension]
    listed = {b for (name, _), (backends, _) in NEEDS.items() if name == setting for b in backends}
    return tuple(b for b in CACHING if b in listed)


def run_settings(variant: Mapping[str, str]) -> dict[str, str]:
    """The service's settings of a run's strategy values (`variant`: dimension -> value)."""
    return {setting: variant[name] for name, setting in DIMENSIONS.items() if name in variant}


def not_applicable(cache: str, strategy: str, variant: Mapping[str, str]) -> str | None:
    """Why the service refuses the strategies of `variant` with backend `cache` and
    CACHE_STRATEGY `strategy`, in its own words, or None when it runs them."""
    settings = run_settings(variant)
    if not settings:
        return None
    try:
        check_together(
            {**defaults(), "CACHE_BACKEND": cache, "CACHE_STRATEGY": strategy, **settings}
        )
    except SettingError as exc:
        return str(exc)
    return None


def extra_store_reads(cache: str, variant: Mapping[str, str]) -> int | None:
    """The store reads a GET makes beyond the tutorial's under the run's invalidation, as
    the service's strategy declares them (and tests/test_strategies.py counts); None for
    a backend that caches nothing, where every GET reads the store."""
    if cache not in applies_to("invalidation"):
        return None
    return INVALIDATIONS[variant.get("invalidation", "delete")].extra_store_reads
