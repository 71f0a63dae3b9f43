"""JourneyGuard features: the event log, its sources, path analysis, KPIs, features and labels."""

if __name__ != "journeyguard.features":
    # The folder on sys.path (a checkout's root) must not make a second copy of the package.
    raise ImportError(f"JourneyGuard installs as `journeyguard.*`: import journeyguard.{__name__}")
